"""A warm feature cache is found without loading the model (request keys), and only for the same request."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from brainlike import Stimulus
from brainlike.execution.tasks import ExtractTask, extract_task
from brainlike.models import extract as extract_mod
from brainlike.models import extract_features
from brainlike.models.extract import ExtractionOptions, cached_features
from brainlike.models.registry import shared_data_dir


def _no_load(*args, **kwargs):
    raise AssertionError("the model was loaded although its features are cached")


@pytest.fixture
def model_copy(tmp_path):
    """A private copy of the stories260k folder (a local model whose files the test may change)."""
    dst = tmp_path / "model"
    shutil.copytree(shared_data_dir() / "models" / "stories260k", dst)
    return dst


@pytest.mark.slow
def test_warm_request_is_served_without_loading_the_model(model_copy, tmp_path, monkeypatch):
    stim = Stimulus.from_text("Once upon a time there was a little cat who liked milk.")
    cache = tmp_path / "cache"
    assert cached_features(str(model_copy), stim, cache_dir=cache) is None  # nothing recorded yet
    cold = extract_features(str(model_copy), stim, cache_dir=cache, progress=False)
    (request,) = (cache / "features" / "requests").glob("*.json")
    assert (cache / "features" / json.loads(request.read_text())["key"] / "features.safetensors").exists()

    monkeypatch.setattr(extract_mod, "load_model", _no_load)
    monkeypatch.setattr("brainlike.execution.tasks.load_model", _no_load)
    warm = extract_features(str(model_copy), stim, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(np.asarray(warm.layers), np.asarray(cold.layers))
    task = ExtractTask(str(model_copy), "m", stim, ExtractionOptions(), str(cache), progress=False)
    from brainlike.execution.tasks import open_features

    np.testing.assert_array_equal(np.asarray(open_features(extract_task(task)).layers), np.asarray(cold.layers))

    # every part of the request must miss when it changes: options, words, the model's files, a random twin
    assert cached_features(str(model_copy), stim, ExtractionOptions(max_window=8), cache_dir=cache) is None
    assert cached_features(str(model_copy), stim, ExtractionOptions(pooling="mean"), cache_dir=cache) is None
    assert cached_features(str(model_copy), Stimulus.from_text("Once upon a time"), cache_dir=cache) is None
    assert cached_features(str(model_copy) + "@random", stim, cache_dir=cache) is None
    cfg = json.loads((model_copy / "config.json").read_text())
    for field, value in (("max_position_embeddings", 16), ("num_hidden_layers", 4)):
        changed = tmp_path / f"model-{field}"
        shutil.copytree(model_copy, changed)
        (changed / "config.json").write_text(json.dumps({**cfg, field: value}))
        assert cached_features(str(changed), stim, cache_dir=cache) is None, field
    # a request whose entry was deleted is a miss, not an error
    shutil.rmtree(cache / "features" / json.loads(request.read_text())["key"])
    assert cached_features(str(model_copy), stim, cache_dir=cache) is None


def test_random_twins_are_keyed_by_their_seed(stories260k, tmp_path, monkeypatch):
    stim = Stimulus.from_text("the cat sat on the mat and the dog sat on the log")
    a = extract_features("stories260k@random:1", stim, cache_dir=tmp_path, progress=False)
    assert cached_features("stories260k@random:2", stim, cache_dir=tmp_path) is None
    assert cached_features("stories260k", stim, cache_dir=tmp_path) is None
    monkeypatch.setattr(extract_mod, "load_model", _no_load)
    hit = cached_features("stories260k@random:1", stim, cache_dir=tmp_path)
    np.testing.assert_array_equal(np.asarray(hit.layers), np.asarray(a.layers))

