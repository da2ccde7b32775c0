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
