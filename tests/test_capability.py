import math

import numpy as np
import pytest
import torch

from brainlike.analyses.capability import bits_per_byte, read_corpus
from brainlike.errors import BrainlikeError


def test_matches_transformers_loss_on_one_window(stories260k):
    text = "Once upon a time, there was a little girl named Lily. She liked to play outside."
    res = bits_per_byte(stories260k, text, window=512, progress=False)
    ids = stories260k.tokenizer(text)["input_ids"]  # with BOS, as bits_per_byte does
    with torch.inference_mode():
        loss = stories260k.model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    n_pred = len(ids) - 1
    assert res["n_tokens"] == n_pred
    np.testing.assert_allclose(res["bits_per_byte"], loss * n_pred / (len(text.encode()) * math.log(2)), rtol=1e-5)


def test_sliding_windows_score_each_token_once(stories260k):
    text = read_corpus("shared:inaugural-2009", max_bytes=3000)
    small = bits_per_byte(stories260k, text, window=64, progress=False)
    big = bits_per_byte(stories260k, text, window=512, progress=False)
    assert small["n_tokens"] == big["n_tokens"]
    assert big["bits_per_byte"] <= small["bits_per_byte"] + 0.05  # more context never hurts much


def test_reference_values_from_shared_readme(stories260k):
    """The shared data README measured stories260k at 3.73 / 4.79 / 2.86 bits per byte."""
    for corpus, ref in [("shared:tinyshakespeare", 3.73), ("shared:wikitext2", 4.79), ("shared:inaugural-2009", 2.86)]:
        got = bits_per_byte(stories260k, read_corpus(corpus, max_bytes=6000), progress=False)["bits_per_byte"]
        assert abs(got - ref) < 0.2, (corpus, got, ref)


def test_encoder_is_refused(minilm):
    with pytest.raises(BrainlikeError, match="not a causal"):
        bits_per_byte(minilm, "hello world", progress=False)


def test_bits_per_word_is_total_bits_over_whitespace_words(stories260k):
    text = read_corpus("shared:inaugural-2009", max_bytes=500)
    res = bits_per_byte(stories260k, text, window=64, progress=False)
    n_words = len(text.split())
    assert res["n_words"] == n_words
    np.testing.assert_allclose(res["bits_per_word"] * n_words, res["bits_per_byte"] * res["n_bytes"], rtol=1e-12)
    np.testing.assert_allclose(res["total_bits"], res["nats_per_token"] * res["n_tokens"] / math.log(2), rtol=1e-9)


def test_minilm_has_no_masked_lm_head_and_is_excluded_with_a_reason(minilm):
    from brainlike.analyses.capability import mlm_head_missing, pseudo_log_likelihood

    reason = mlm_head_missing(minilm)
    assert reason is not None and "BertModel" in reason and "excluded" in reason
    with pytest.raises(BrainlikeError, match="masked-LM head"):
        pseudo_log_likelihood(minilm, "hello world", progress=False)


def test_pseudo_log_likelihood_masks_each_token_in_turn(minilm, tmp_path):
    """A tiny BERT with a masked-LM head (random weights, MiniLM's tokenizer): the batched PLL equals
    masking one token at a time by hand (Salazar et al. 2020, eq. 2)."""
    from transformers import BertConfig, BertForMaskedLM

    from brainlike.analyses.capability import pseudo_log_likelihood
    from brainlike.models import load_model

    tok = minilm.tokenizer
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    BertForMaskedLM(cfg).eval().save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    lm = load_model(str(tmp_path))
    assert lm.kind == "encoder"
    text = "The cat sat on the mat. It was a sunny day, and the birds sang."
    res = pseudo_log_likelihood(lm, text, window=12, batch_size=3, progress=False)
    head = BertForMaskedLM.from_pretrained(tmp_path).eval()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    want = 0.0
    for s in range(0, len(ids), 10):
        seg = [tok.cls_token_id, *ids[s:s + 10], tok.sep_token_id]
        for i in range(1, len(seg) - 1):
            masked = list(seg)
            masked[i] = tok.mask_token_id
            with torch.inference_mode():
                logp = torch.log_softmax(head(input_ids=torch.tensor([masked])).logits[0, i], dim=-1)
            want -= float(logp[seg[i]]) / math.log(2)
    assert res["n_tokens"] == len(ids)
    np.testing.assert_allclose(res["total_bits"], want, rtol=1e-5)
    np.testing.assert_allclose(res["pll_bits_per_word"], want / len(text.split()), rtol=1e-5)


@pytest.mark.slow
def test_capability_tables_measure_exclude_correlate_and_cache(shared_data, minilm, tmp_path, monkeypatch):
    """The pipeline's capability tables: bits per byte/word and SyntaxGym for causal LMs (random-weight
    twins worse than the trained model), an explicit exclusion row for an encoder without an MLM head,
    correlations with their smallest attainable p, and a rerun that loads no model."""
    import pandas as pd
    from rich.console import Console

    from brainlike.pipelines import alignment as pipe
    from brainlike.spec import ExperimentSpec
    from brainlike.store import ResultsStore

    models = ["stories260k", "stories260k@random", "stories260k@random:1", "minilm-l6"]
    spec = ExperimentSpec(models=models, analyses={"capability": {
        "corpus": "shared:inaugural-2009", "corpora": ["shared:tinyshakespeare"], "max_bytes": 300,
        "syntaxgym": ["number_src", "subordination"], "syntaxgym_max_items": 2, "n_boot": 200}})
    per_model = pd.DataFrame({"model": models, "brain_score": [0.3, 0.1, 0.12, 0.2]})
    store = ResultsStore(tmp_path / "results")
    tables = pipe.capability_tables(spec, store, per_model, Console(quiet=True), progress=False)
    cap = tables["capability"].set_index(["model", "measure"])
    for corpus in ("inaugural-2009", "tinyshakespeare"):
        trained = cap.loc[("stories260k", f"bits_per_word:{corpus}"), "value"]
        for twin in models[1:3]:
            assert cap.loc[(twin, f"bits_per_word:{corpus}"), "value"] > trained + 1.0
    enc = cap.loc["minilm-l6"]
    assert enc["value"].isna().all() and set(enc.index) == {"bits_per_word:inaugural-2009",
                                                            "bits_per_word:tinyshakespeare", "syntaxgym"}
    assert enc["note"].str.contains("masked-LM head|not a causal LM").all()
    sgym = tables["syntaxgym"]
    assert len(sgym) == 6 and (sgym["n_items"] == 2).all()
    assert cap.loc[("stories260k", "syntaxgym"), "ci_low"] <= cap.loc[("stories260k", "syntaxgym"), "value"]
    corr = tables["capability_correlation"].set_index(["capability_measure", "metric"])
    row = corr.loc[("-bits_per_word:inaugural-2009", "brain_score")]
    assert row["n_models"] == 3 and row["p_min"] == pytest.approx(1 / 6) and row["p_perm"] >= row["p_min"]
    assert row["pearson_r"] > 0  # the trained model: lowest bits and highest (planted) brain score

    def no_loading(*a, **k):
        raise AssertionError("a rerun must read the cached measures")

    monkeypatch.setattr(pipe, "load_model", no_loading)
    again = pipe.capability_tables(spec, store, per_model, Console(quiet=True), progress=False)
    pd.testing.assert_frame_equal(again["capability"], tables["capability"], check_dtype=False)
    pd.testing.assert_frame_equal(again["syntaxgym"], tables["syntaxgym"], check_dtype=False)
    # a model's measures serve its other feature kinds too (surprisal as the only regressor)
    surp = spec.model_copy(update={"models": [m.model_copy(update={"features": "surprisal"}) for m in spec.models[:1]]})
    one = pd.DataFrame({"model": ["stories260k/surprisal"], "brain_score": [0.2]})
    reused = pipe.capability_tables(surp, store, one, Console(quiet=True), progress=False)["capability"]
    want = tables["capability"][tables["capability"]["model"] == "stories260k"]
    assert set(reused["model"]) == {"stories260k/surprisal"}
    np.testing.assert_allclose(reused["value"].to_numpy(float), want["value"].to_numpy(float))
