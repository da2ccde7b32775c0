"""Streaming extraction: layer hooks reproduce output_hidden_states exactly (Llama, BERT, Gemma 3, GPT-2),
the feature file is a memory-mapped safetensors file with verified checksums, and extraction never holds
all layers in memory."""
import dataclasses
import json
import tracemalloc
import warnings

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from brainlike import Stimulus
from brainlike.models import Features, extract_features
from brainlike.models import extract as ex
from brainlike.models.alignment import tokenize_words
from brainlike.models.features import CorruptFeaturesError, checksum_path

TEXT = ("The little dog ran to the big red barn, and barked at the moon all night long while the farmer "
        "slept soundly in his old wooden house beyond the quiet hill")
TOL = dict(rtol=1e-5, atol=1e-5)


def _bare(lm, ids) -> np.ndarray:
    """``(n_layers + 1, n_tokens, hidden)`` from a bare ``model(..., output_hidden_states=True)``."""
    with torch.inference_mode():
        out = lm.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return torch.stack(out.hidden_states)[:, 0].float().numpy()


def _check_against_bare(lm, tmp_path) -> None:
    stim = Stimulus.from_text(TEXT)
    tw = tokenize_words(lm.tokenizer, stim.words)
    p = len(tw.prefix)
    hs = _bare(lm, list(tw.prefix) + tw.input_ids.tolist() + list(tw.suffix))
    feats = extract_features(lm, stim, cache_dir=tmp_path, progress=False)
    assert isinstance(feats.layers, np.memmap) and feats.layers.shape == (lm.n_layers + 1, len(stim), lm.hidden_size)
    np.testing.assert_allclose(feats.layers, hs[:, tw.word_end - 1 + p], **TOL)  # last layer included
    mean = extract_features(lm, stim, cache_dir=tmp_path, progress=False, pooling="mean")
    for i in range(len(stim)):
        rows = np.arange(tw.word_start[i], tw.word_end[i]) + p
        np.testing.assert_allclose(mean.layers[:, i], hs[:, rows].mean(axis=1), **TOL)
    # fixed context, batched with right padding: each word against its own unpadded bare pass. Padding
    # changes matmul shapes, so float32 rounding differs slightly: compare relative to each layer's scale
    # (SmolLM2's first token carries activations of ~2e4).
    n = 4
    ctx = extract_features(lm, stim, cache_dir=tmp_path, progress=False, context_tokens=n, batch_size=5)
    for i in (0, 1, 3, 11, len(stim) - 1):
        a, b = tw.word_start[i], tw.word_end[i]
        ids = list(tw.prefix) + tw.input_ids[max(0, a - n):b].tolist() + list(tw.suffix)
        ref = _bare(lm, ids)
        want = ref[:, b - max(0, a - n) - 1 + p]
        scale = np.maximum(np.abs(ref).max(axis=(1, 2)), 1.0)[:, None]
        assert (np.abs(ctx.layers[:, i] - want) <= 1e-5 * scale).all(), f"word {i}"


@pytest.mark.parametrize("fixture", ["smollm2", "minilm", "stories260k"])
def test_hooks_match_output_hidden_states(request, fixture, tmp_path):
    _check_against_bare(request.getfixturevalue(fixture), tmp_path)


def _tiny(stories260k, arch: str):
    """A randomly initialised 3-block model of another architecture, with the stories260k tokenizer."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    if arch == "gemma3":
        cfg = Gemma3TextConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                               num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=8,
                               max_position_embeddings=256)
        model = Gemma3ForCausalLM(cfg)
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=512, n_embd=32, n_layer=3, n_head=2, n_positions=256))
    model.eval()
    hidden = model.config.hidden_size
    return dataclasses.replace(stories260k, model=model, n_layers=3, hidden_size=hidden, max_tokens=256,
                               fingerprint=f"test:{arch}-tiny")


@pytest.mark.parametrize("arch", ["gemma3", "gpt2"])
def test_hooks_other_architectures(stories260k, arch, tmp_path):
    lm = _tiny(stories260k, arch)
    assert ex.transformer_blocks(ex._base_module(lm.model), 3) is not None
    _check_against_bare(lm, tmp_path)


def test_fallback_without_block_list(stories260k, tmp_path, monkeypatch):
    """An architecture whose blocks are not found still extracts (via output_hidden_states), identically."""
    stim = Stimulus.from_text(TEXT)
    hooked = extract_features(stories260k, stim, use_cache=False, progress=False, context_tokens=3, batch_size=4)
    monkeypatch.setattr(ex, "transformer_blocks", lambda *a: None)
    fallback = extract_features(stories260k, stim, cache_dir=tmp_path, progress=False, context_tokens=3, batch_size=4)
    np.testing.assert_array_equal(np.asarray(fallback.layers), hooked.layers)


def test_misidentified_blocks_fall_back_with_warning(stories260k, tmp_path, monkeypatch):
    """Hooks on modules that never run: detected on the first unit, which is redone via
    output_hidden_states; the features are still exact."""
    stim = Stimulus.from_text(TEXT)
    want = extract_features(stories260k, stim, use_cache=False, progress=False, context_tokens=3, batch_size=4)
    decoys = torch.nn.ModuleList([torch.nn.Identity() for _ in range(stories260k.n_layers)])
    monkeypatch.setattr(ex, "transformer_blocks", lambda *a: decoys)
    with pytest.warns(RuntimeWarning, match="hooks do not match"):
        got = extract_features(stories260k, stim, cache_dir=tmp_path, progress=False, context_tokens=3, batch_size=4)
    np.testing.assert_array_equal(np.asarray(got.layers), want.layers)


def test_feature_file_is_memmapped_safetensors(stories260k, tmp_path):
    stim = Stimulus.from_text(TEXT)
    feats = extract_features(stories260k, stim, cache_dir=tmp_path, progress=False)
    (path,) = tmp_path.rglob("features.safetensors")
    tensors = load_file(str(path))  # a valid safetensors file, readable by the reference reader
    assert sorted(tensors) == [f"layer_{k:03d}" for k in range(stories260k.n_layers + 1)]
    for k in range(feats.n_layers):
        np.testing.assert_array_equal(tensors[f"layer_{k:03d}"], feats.layer(k))
    assert not feats.layers.flags.writeable
    with pytest.raises(ValueError):
        feats.layers[0, 0, 0] = 1.0
    sums = json.loads(checksum_path(path).read_text())
    assert sums["algorithm"] == "sha256" and len(sums["layers"]) == feats.n_layers
    # same numbers without the cache (in memory)
    mem = extract_features(stories260k, stim, use_cache=False, progress=False)
    assert not isinstance(mem.layers, np.memmap)
    np.testing.assert_array_equal(mem.layers, feats.layers)


def test_save_load_roundtrip_and_verify(tmp_path):
    rng = np.random.default_rng(0)
    f = Features(rng.normal(size=(4, 7, 5)).astype(np.float32), "m", tuple("abcdefg"), {"pooling": "last"})
    path = f.save(tmp_path / "f.safetensors")
    g = Features.load(path, verify=True)
    np.testing.assert_array_equal(g.layers, f.layers)
    assert (g.model, g.words, g.options) == ("m", f.words, {"pooling": "last"})
    Features.load(path, verify=True).save(tmp_path / "copy.safetensors")  # saving a memory-mapped Features
    assert (tmp_path / "copy.safetensors").read_bytes() == path.read_bytes()
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01  # one bit in the last layer
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFeaturesError, match="layer 3"):
        Features.load(path, verify=True)
    path.write_bytes(bytes(raw[:-10]))
    with pytest.raises(CorruptFeaturesError, match="truncated|size"):
        Features.load(path, verify=True)
    with pytest.raises(CorruptFeaturesError, match="truncated"):
        Features.load(path)


def test_truncated_cache_entry_is_recomputed(stories260k, tmp_path):
    stim = Stimulus.from_text(TEXT)
    first = np.array(extract_features(stories260k, stim, cache_dir=tmp_path, progress=False).layers)
    (path,) = tmp_path.rglob("features.safetensors")
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - 100)
    with pytest.warns(RuntimeWarning, match="corrupt feature cache entry"):
        again = extract_features(stories260k, stim, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(again.layers, first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recomputed entry verifies cleanly
        extract_features(stories260k, stim, cache_dir=tmp_path, progress=False)


def test_bfloat16_streamed_as_float32(tmp_path, stories260k):
    stim = Stimulus.from_text(TEXT)
    f32 = extract_features("stories260k", stim, cache_dir=tmp_path, progress=False)
    bf16 = extract_features("stories260k", stim, cache_dir=tmp_path, progress=False, dtype="bfloat16", pooling="mean")
    assert bf16.layers.dtype == np.float32
    f32m = extract_features("stories260k", stim, cache_dir=tmp_path, progress=False, pooling="mean")
    rel = np.linalg.norm(bf16.layers - f32m.layers) / np.linalg.norm(f32m.layers)
    assert 0 < rel < 0.05 and not np.array_equal(f32.layers, f32m.layers)


def test_peak_memory_does_not_hold_all_layers(smollm2, story_text, tmp_path):
    """numpy allocations during extraction (traced) stay far below one array of all layers: the old
    implementation allocated ``(n_layers + 1, n_words, hidden)`` twice (the result and each window's stack)."""
    stim = Stimulus.from_text(" ".join(story_text.split()[:300]))
    all_layers = (smollm2.n_layers + 1) * len(stim) * smollm2.hidden_size * 4  # 21 MB
    one_layer = len(stim) * smollm2.hidden_size * 4
    tokenize_words(smollm2.tokenizer, stim.words)  # warm-up outside the trace
    tracemalloc.start()
    try:
        feats = extract_features(smollm2, stim, cache_dir=tmp_path, progress=False, max_window=128)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert feats.layers.shape == (31, len(stim), 576)
    assert peak < all_layers / 5, f"peak traced {peak / 1e6:.1f} MB vs all layers {all_layers / 1e6:.1f} MB"
    assert peak < 5 * one_layer + 2e6
