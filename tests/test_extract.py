"""Feature extraction: equality with a bare forward pass, context modes, caching and resume."""
import numpy as np
import pytest
import torch

from brainlike import Stimulus
from brainlike.errors import BrainlikeError, ModelError
from brainlike.models import ExtractionOptions, Features, extract_features, resolve_model
from brainlike.models.alignment import tokenize_words


def _bare_hidden_states(lm, ids):
    with torch.inference_mode():
        out = lm.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return torch.stack(out.hidden_states)[:, 0].float().numpy()


@pytest.mark.parametrize("fixture", ["stories260k", "minilm"])
def test_full_context_matches_bare_forward(request, fixture, tmp_path):
    lm = request.getfixturevalue(fixture)
    stim = Stimulus.from_text("The little dog ran to the big red barn and barked at the moon all night long")
    feats = extract_features(lm, stim, cache_dir=tmp_path, progress=False)
    assert feats.layers.shape == (lm.n_layers + 1, len(stim), lm.hidden_size)
    assert feats.layers.dtype == np.float32
    tw = tokenize_words(lm.tokenizer, stim.words)
    ids = list(tw.prefix) + tw.input_ids.tolist() + list(tw.suffix)
    hs = _bare_hidden_states(lm, ids)
    p = len(tw.prefix)
    np.testing.assert_allclose(feats.layers, hs[:, tw.word_end - 1 + p], atol=1e-4, rtol=1e-4)
    mean = extract_features(lm, stim, cache_dir=tmp_path, progress=False, pooling="mean")
    for i in (0, 5, len(stim) - 1):
        rows = np.arange(tw.word_start[i], tw.word_end[i]) + p
        np.testing.assert_allclose(mean.layers[:, i], hs[:, rows].mean(axis=1), atol=1e-4, rtol=1e-4)


def test_exact_context_window(stories260k, tmp_path):
    lm = stories260k
    stim = Stimulus.from_text("one day a girl named lily went to the park with her mom to play")
    n = 3
    feats = extract_features(lm, stim, cache_dir=tmp_path, progress=False, context_tokens=n, batch_size=4)
    tw = tokenize_words(lm.tokenizer, stim.words)
    for i in (0, 4, len(stim) - 1):
        a, b = tw.word_start[i], tw.word_end[i]
        ids = list(tw.prefix) + tw.input_ids[max(0, a - n):b].tolist()
        np.testing.assert_allclose(feats.layers[:, i], _bare_hidden_states(lm, ids)[:, -1], atol=1e-4)
    # zero context: the word alone (after BOS) — differs from full context for later layers
    full = extract_features(lm, stim, cache_dir=tmp_path, progress=False)
    assert not np.allclose(feats.layers[-1, -1], full.layers[-1, -1], atol=1e-3)


def test_long_story_overlapping_windows(stories260k, story_text, tmp_path):
    """A story longer than the window: every word read out with >= half a window of context."""
    lm = stories260k
    stim = Stimulus.from_text(" ".join(story_text.split()[:200]))
    window = 64
    feats = extract_features(lm, stim, cache_dir=tmp_path, progress=False, max_window=window + 1)
    tw = tokenize_words(lm.tokenizer, stim.words)
    assert tw.n_tokens > 4 * window
    i = 150  # a word far into the story; recompute with exactly the context the plan gives it
    end = tw.word_end[i]
    for start in range(0, end):
        ids = list(tw.prefix) + tw.input_ids[start:end].tolist()
        if len(ids) - 1 <= window and end - start >= window // 2:
            candidate = _bare_hidden_states(lm, ids)[:, -1]
            if np.allclose(feats.layers[:, i], candidate, atol=1e-4):
                break
    else:
        pytest.fail("word 150's features match no window with >= half a window of context")


def test_cache_hit_and_resume(stories260k, tmp_path, monkeypatch):
    lm = stories260k
    stim = Stimulus.from_text("the cat sat on the mat and looked at the dog " * 4)
    opts = ExtractionOptions(context_tokens=4, batch_size=8)
    from brainlike.models import extract as ex

    calls = {"n": 0}
    real_forward = ex._forward

    def flaky(lm_, batch, device):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # an interruption after two finished pieces
        return real_forward(lm_, batch, device)

    monkeypatch.setattr(ex, "_forward", flaky)
    with pytest.raises(KeyboardInterrupt):
        extract_features(lm, stim, opts, cache_dir=tmp_path, progress=False)
    (journal,) = tmp_path.rglob("journal.txt")
    assert len(journal.read_text().splitlines()) == 1 + 2  # header + two finished units
    assert not list(tmp_path.rglob("*.tmp*")) and not list(tmp_path.rglob("features.safetensors"))
    calls["n"] = 0
    monkeypatch.setattr(ex, "_forward", lambda *a: (calls.__setitem__("n", calls["n"] + 1), real_forward(*a))[1])
    resumed = extract_features(lm, stim, opts, cache_dir=tmp_path, progress=False)
    n_units = -(-len(stim) // 8)
    assert calls["n"] == n_units - 2  # finished pieces were not recomputed
    fresh = extract_features(lm, stim, opts, use_cache=False, progress=False)
    np.testing.assert_allclose(resumed.layers, fresh.layers, atol=1e-6)
    calls["n"] = 0
    again = extract_features(lm, stim, opts, cache_dir=tmp_path, progress=False)
    assert calls["n"] == 0 and isinstance(again, Features)
    np.testing.assert_array_equal(again.layers, resumed.layers)
    # the unfinished file and its journal are gone once the entry is complete
    assert not any(tmp_path.rglob("*.partial")) and not any(tmp_path.rglob("journal.txt"))


def test_cache_key_depends_on_options(stories260k, tmp_path):
    stim = Stimulus.from_text("a b c d e f")
    extract_features(stories260k, stim, cache_dir=tmp_path, progress=False)
    extract_features(stories260k, stim, cache_dir=tmp_path, progress=False, pooling="mean")
    extract_features(stories260k, Stimulus.from_text("a b c d e g"), cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.rglob("features.safetensors"))) == 3


def test_float16_close_to_float32(tmp_path):
    stim = Stimulus.from_text("the quick brown fox jumps over the lazy dog")
    f32 = extract_features("minilm-l6", stim, cache_dir=tmp_path, progress=False)
    f16 = extract_features("minilm-l6", stim, cache_dir=tmp_path, progress=False, dtype="float16")
    assert f16.layers.dtype == np.float32
    rel = np.linalg.norm(f16.layers - f32.layers) / np.linalg.norm(f32.layers)
    assert 0 < rel < 0.02


def test_bad_options_and_models():
    with pytest.raises(BrainlikeError, match="pooling"):
        ExtractionOptions(pooling="first")
    with pytest.raises(ModelError, match="not found"):
        resolve_model("./no/such/model")
    assert resolve_model("gpt2").source == "hub"
    with pytest.raises(ModelError, match="offline"):
        from brainlike.models import load_model

        load_model("brainlike-test/definitely-not-cached")


def test_registry_entries():
    e = resolve_model("smollm2-135m")
    assert e.source == "gguf" and e.gguf_file.endswith(".gguf") and e.kind == "causal"
    assert resolve_model("minilm-l6").kind == "encoder"
