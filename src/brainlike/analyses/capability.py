"""Model capability: bits per byte of held-out text (lower = more capable)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from brainlike.errors import BrainlikeError
from brainlike.models.loading import LoadedModel, load_model


@torch.inference_mode()
def bits_per_byte(
    model: str | LoadedModel,
    text: str,
    max_bytes: int | None = 20000,
    window: int = 512,
    stride: int | None = None,
    progress: bool = True,
) -> dict:
    """Bits per UTF-8 byte of ``text`` under a causal LM (sliding windows; each token scored once).

    Every token after the first is predicted with up to ``window - 1`` tokens of context; windows advance
    by ``stride`` (default ``window // 2``) and only the tokens not scored before count. The result is
    tokenizer-independent: total negative log-likelihood (nats) / (bytes × ln 2).

    Returns:
        dict with ``bits_per_byte``, ``nats_per_token``, ``n_tokens``, ``n_bytes``.
    """
    lm = model if isinstance(model, LoadedModel) else load_model(model)
    if lm.kind != "causal":
        raise BrainlikeError(f"{lm.name} is not a causal language model: bits per byte needs next-token "
                             "predictions; give its capability in the spec instead")
    if max_bytes is not None:
        text = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    n_bytes = len(text.encode("utf-8"))
    if n_bytes == 0:
        raise BrainlikeError("empty evaluation text")
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    finally:
        hf_logging.set_verbosity(level)
    bos = lm.tokenizer.bos_token_id
    prefix = [bos] if bos is not None and len(lm.tokenizer(" ", add_special_tokens=True)["input_ids"]) > \
        len(lm.tokenizer(" ", add_special_tokens=False)["input_ids"]) else []
    ids = prefix + list(ids)
    window = min(window, lm.max_tokens)
    stride = stride or max(window // 2, 1)
    total_nll, n_scored, scored_until = 0.0, 0, 1  # token 0 is never predicted
    starts = list(range(0, max(len(ids) - 1, 1), stride))
    for start in tqdm(starts, desc=f"bits/byte {lm.name}", disable=not progress, leave=False):
        stop = min(start + window, len(ids))
        chunk = torch.tensor([ids[start:stop]])
        logits = lm.model(input_ids=chunk).logits[0, :-1].float()
        targets = chunk[0, 1:]
        nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none").numpy()
        positions = np.arange(start + 1, stop)
        keep = positions >= scored_until
        total_nll += float(nll[keep].sum())
        n_scored += int(keep.sum())
        scored_until = stop
        if stop == len(ids):
            break
    return {"bits_per_byte": total_nll / (n_bytes * math.log(2)), "nats_per_token": total_nll / max(n_scored, 1),
            "n_tokens": n_scored, "n_bytes": n_bytes}


def read_corpus(spec: str, max_bytes: int | None = None) -> str:
    """Text of a corpus: a file path, or ``shared:<name>`` for the corpora in ../shared/data/corpora
    (``tinyshakespeare``, ``wikitext2``, ``inaugural-2009``)."""
    if spec.startswith("shared:"):
        from brainlike.models.registry import shared_data_dir

        base = shared_data_dir()
        if base is None:
            raise BrainlikeError("shared data folder not found (set BRAINLIKE_SHARED_DATA)")
        name = spec.split(":", 1)[1]
        corpora = base / "corpora"
        if name == "tinyshakespeare":
            text = (corpora / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
        elif name in ("wikitext2", "wikitext-2"):
            text = (corpora / "wikitext-2-tokenized" / "test.txt").read_text(encoding="utf-8")
        elif name.startswith("inaugural"):
            import zipfile

            year = name.split("-")[1] if "-" in name else "2009"
            with zipfile.ZipFile(corpora / "nltk-inaugural" / "inaugural.zip") as zf:
                match = [n for n in zf.namelist() if Path(n).name.startswith(year)]
                if not match:
                    raise BrainlikeError(f"no inaugural address from {year}")
                text = zf.read(match[0]).decode("utf-8", errors="replace")
        else:
            raise BrainlikeError(f"unknown shared corpus {name!r}: tinyshakespeare, wikitext2, inaugural-YEAR")
    else:
        path = Path(spec)
        if not path.exists():
            raise BrainlikeError(f"corpus file not found: {path}")
        text = path.read_text(encoding="utf-8")
    if max_bytes is not None:
        text = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    return text
