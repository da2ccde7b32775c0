"""Model capability: bits per byte and bits per word of held-out text (lower = more capable).

Causal LMs: :func:`bits_per_byte` (sliding windows, each token scored once). Encoders with a masked-LM
head: :func:`pseudo_log_likelihood` (Salazar et al. 2020); encoders without one (sentence-transformer
checkpoints such as all-MiniLM-L6-v2) have no likelihood and are excluded with the reason
:func:`mlm_head_missing` gives.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from brainlike.errors import BrainlikeError
from brainlike.models.loading import LoadedModel, load_model
from brainlike.models.surprisal import uses_bos


@torch.inference_mode()
def bits_per_byte(
    model: str | LoadedModel,
    text: str,
    max_bytes: int | None = 20000,
    window: int = 512,
    stride: int | None = None,
    progress: bool = True,
) -> dict:
    """Bits per UTF-8 byte and bits per word of ``text`` under a causal LM (sliding windows; each token scored once).

    Every token after the first is predicted with up to ``window - 1`` tokens of context; windows advance
    by ``stride`` (default ``window // 2``) and only the tokens not scored before count. With ``T`` = the
    total negative log-likelihood of the scored tokens in bits:

    * ``bits_per_byte`` = T / number of UTF-8 bytes of ``text`` (tokenizer-independent);
    * ``bits_per_word`` = T / number of whitespace-separated words of ``text`` (``len(text.split())``),
      so punctuation attached to a word belongs to it.

    A BOS token is prepended when the tokenizer adds one, so the first token is predicted too; without
    one the first token is never scored (its bits are missing from T: the numbers are a slight lower bound).

    Returns
    -------
    dict
        dict with ``bits_per_byte``, ``bits_per_word``, ``total_bits``, ``nats_per_token``, ``n_tokens``
        (scored), ``n_bytes``, ``n_words``.
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
    prefix = [lm.tokenizer.bos_token_id] if uses_bos(lm) else []  # the one BOS rule (models.surprisal)
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
    total_bits = total_nll / math.log(2)
    n_words = len(text.split())
    return {"bits_per_byte": total_bits / n_bytes, "bits_per_word": total_bits / max(n_words, 1),
            "total_bits": total_bits, "nats_per_token": total_nll / max(n_scored, 1), "n_tokens": n_scored,
            "n_bytes": n_bytes, "n_words": n_words}


def mlm_head_missing(lm: LoadedModel) -> str | None:
    """Why an encoder has no pseudo-log-likelihood.

    ``None`` when its checkpoint declares a masked-LM head (``config.architectures`` has ``...ForMaskedLM``), else a
    one-line reason for the report.
    """
    if lm.kind == "causal":
        return "a causal LM: scored by bits per byte/word instead"
    if lm.kind == "static":
        return "static word vectors: no language-model head, excluded from the capability measures"
    archs = list(getattr(getattr(lm.model, "config", None), "architectures", None) or [])
    if any(a.endswith("ForMaskedLM") for a in archs):
        return None
    return (f"encoder without a masked-LM head (checkpoint architectures: {', '.join(archs) or 'none'}): "
            "no pseudo-log-likelihood, excluded from the capability measures")


@torch.inference_mode()
def pseudo_log_likelihood(
    model: str | LoadedModel,
    text: str,
    max_bytes: int | None = 20000,
    window: int = 128,
    batch_size: int = 32,
    progress: bool = True,
) -> dict:
    """Pseudo-log-likelihood of ``text`` under a masked LM (Salazar et al.

    2020, "Masked language model scoring"): every token is masked in turn and scored given all the others of its
    segment.

    The text is cut into consecutive segments of ``window`` tokens including the tokenizer's special
    tokens (e.g. [CLS] ... [SEP]); with ``T`` = -sum over tokens of log2 p(token | segment with
    the token masked), ``pll_bits_per_byte`` = T / UTF-8 bytes and ``pll_bits_per_word`` = T / whitespace
    words. Not comparable with causal bits (it conditions on both sides); use it within encoders only.

    Returns
    -------
    dict
        dict with ``pll_bits_per_byte``, ``pll_bits_per_word``, ``total_bits``, ``n_tokens``, ``n_bytes``,
        ``n_words``.
    """
    from transformers import AutoModelForMaskedLM

    lm = model if isinstance(model, LoadedModel) else load_model(model)
    reason = mlm_head_missing(lm)
    if reason is not None:
        raise BrainlikeError(f"{lm.name}: {reason}")
    if lm.entry.random_seed is None:
        head = AutoModelForMaskedLM.from_pretrained(lm.entry.path).eval()
    else:  # a random-weight twin: the head initialised like the body (models.registry.random_twin)
        torch.manual_seed(lm.entry.random_seed)
        head = AutoModelForMaskedLM.from_config(lm.model.config).eval()
    tok = lm.tokenizer
    if max_bytes is not None:
        text = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    n_bytes, n_words = len(text.encode("utf-8")), len(text.split())
    if n_bytes == 0:
        raise BrainlikeError("empty evaluation text")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    plain = tok("a", add_special_tokens=False)["input_ids"]
    framed_a = tok("a", add_special_tokens=True)["input_ids"]
    offset = next(i for i in range(len(framed_a)) if framed_a[i:i + len(plain)] == plain)
    prefix, suffix = framed_a[:offset], framed_a[offset + len(plain):]  # e.g. [CLS], [SEP]
    seg = max(window - len(prefix) - len(suffix), 1)
    total, n = 0.0, 0
    for start in tqdm(range(0, len(ids), seg), desc=f"PLL {lm.name}", disable=not progress, leave=False):
        body = ids[start:start + seg]
        base = torch.tensor(prefix + body + suffix)
        for b in range(0, len(body), batch_size):
            pos = torch.arange(b, min(b + batch_size, len(body))) + offset
            batch = base.repeat(len(pos), 1)
            batch[torch.arange(len(pos)), pos] = tok.mask_token_id
            logp = torch.log_softmax(head(input_ids=batch).logits.float(), dim=-1)
            total -= float(logp[torch.arange(len(pos)), pos, base[pos]].sum())
            n += len(pos)
    bits = total / math.log(2)
    return {"pll_bits_per_byte": bits / n_bytes, "pll_bits_per_word": bits / max(n_words, 1), "total_bits": bits,
            "n_tokens": n, "n_bytes": n_bytes, "n_words": n_words}


def read_corpus(spec: str, max_bytes: int | None = None) -> str:
    """Text of a corpus.

    A file path, or ``shared:<name>`` for the corpora in ../shared/data/corpora (``tinyshakespeare``, ``wikitext2``,
    ``inaugural-2009``).
    """
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


CAPABILITY_COLUMNS = ["model", "measure", "value", "ci_low", "ci_high", "higher_is_better", "source", "note"]


def corpus_label(spec: str) -> str:
    """Short name of a corpus spec for measure names: ``shared:wikitext2`` -> ``wikitext2``, a path -> its stem."""
    return spec.split(":", 1)[1] if spec.startswith("shared:") else Path(spec).stem


def capability_measures(
    lm: LoadedModel,
    corpora: list[str],
    *,
    max_bytes: int | None = 8000,
    window: int = 512,
    syntaxgym: list[str] | None = None,
    syntaxgym_max_items: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every capability measure of one model, as tidy rows.

    A measure the model cannot have is a row with ``value`` NaN and the reason in ``note`` (never silently dropped).

    Parameters
    ----------
    lm : LoadedModel
    corpora : list of str
        Corpus specs (:func:`read_corpus`); causal LMs get ``bits_per_byte:<corpus>`` and
        ``bits_per_word:<corpus>`` (:func:`bits_per_byte`), encoders with a masked-LM head
        ``pll_bits_per_byte:<corpus>`` / ``pll_bits_per_word:<corpus>`` (:func:`pseudo_log_likelihood`).
    syntaxgym : list of str, optional
        SyntaxGym 2020 suite names (``[]``: all 31; None: no SyntaxGym); causal LMs only. Gives
        ``syntaxgym`` (mean over suites, bootstrap CI) and ``syntaxgym_items`` (pooled, Wilson CI).

    Returns
    -------
    rows : DataFrame
        :data:`CAPABILITY_COLUMNS` (``value`` in bits or accuracy in [0, 1]).
    items : DataFrame
        Per-item SyntaxGym results (``model, suite, item, n_predictions, n_holding, correct``); empty
        without SyntaxGym.
    """
    from brainlike.analyses import syntaxgym as sg

    rows: list[dict] = []

    def add(measure, value, lo=np.nan, hi=np.nan, better=False, source="", note=""):
        rows.append(dict(model=lm.name, measure=measure, value=value, ci_low=lo, ci_high=hi,
                         higher_is_better=better, source=source, note=note))

    reason = mlm_head_missing(lm) if lm.kind != "causal" else None
    for corpus in corpora:
        label, text = corpus_label(corpus), read_corpus(corpus, max_bytes)
        if lm.kind == "causal":
            res = bits_per_byte(lm, text, max_bytes=None, window=window, progress=progress)
            add(f"bits_per_byte:{label}", res["bits_per_byte"], source=corpus, note=f"{res['n_bytes']} bytes")
            add(f"bits_per_word:{label}", res["bits_per_word"], source=corpus, note=f"{res['n_words']} words")
        elif reason is None:
            res = pseudo_log_likelihood(lm, text, max_bytes=None, progress=progress)
            add(f"pll_bits_per_byte:{label}", res["pll_bits_per_byte"], source=corpus, note="pseudo-log-likelihood")
            add(f"pll_bits_per_word:{label}", res["pll_bits_per_word"], source=corpus, note="pseudo-log-likelihood")
        else:
            add(f"bits_per_word:{label}", np.nan, source=corpus, note=reason)
    items = pd.DataFrame(columns=["model", "suite", "item", "n_predictions", "n_holding", "correct"])
    if syntaxgym is not None:
        if lm.kind != "causal":
            add("syntaxgym", np.nan, better=True, source="SyntaxGym 2020",
                note=f"not a causal LM ({lm.kind}): no next-word surprisal, excluded from SyntaxGym")
        else:
            items = sg.evaluate_syntaxgym(sg.model_predictor(lm, window=window, progress=progress),
                                          syntaxgym or None, max_items=syntaxgym_max_items)
            items.insert(0, "model", lm.name)
            ov = sg.overall_accuracy(items, n_boot=n_boot, seed=seed).set_index("measure")
            n_s, n_i = int(ov.loc["suite_mean", "n_suites"]), int(ov.loc["suite_mean", "n_items"])
            add("syntaxgym", ov.loc["suite_mean", "value"], ov.loc["suite_mean", "ci_low"],
                ov.loc["suite_mean", "ci_high"], True, "SyntaxGym 2020",
                f"mean over {n_s} suites ({n_i} items); bootstrap CI over items within suites")
            add("syntaxgym_items", ov.loc["item_mean", "value"], ov.loc["item_mean", "ci_low"],
                ov.loc["item_mean", "ci_high"], True, "SyntaxGym 2020", f"pooled over {n_i} items; Wilson CI")
    return pd.DataFrame(rows, columns=CAPABILITY_COLUMNS), items
