"""The alignment analysis on word-level datasets (``modality == "wordlevel"``, e.g. ``kind: wordlevel``).

Per-word responses (ERP amplitudes, reading times) are not time courses to encode from hidden states:
every model of the zoo contributes its next-word predictions (:func:`brainlike.models.surprisal.
word_predictions`, with the dataset's ``context``: each item read on its own, or all in order), and the
responses are regressed on them (:func:`brainlike.analyses.wordlevel.wordlevel_tables`): per subject,
on the across-subject average with its split-half ceiling, partial correlations and, when asked, a
mixed model. A model's ``features:`` setting does not matter here (predictions are always used).

Tables (all in the results store): ``wordlevel_predictions`` (per model and word: surprisal, entropy,
n_tokens), ``wordlevel_average``, ``wordlevel_average_terms``, ``wordlevel_subject_fits``,
``wordlevel_mixed`` (when asked) and ``brain_scores`` (per model: ``brain_score`` = r of surprisal with
the average of the first response, for the capability correlation).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from rich.console import Console

from brainlike.analyses.wordlevel import wordlevel_tables
from brainlike.models import load_model
from brainlike.neural.sources import SubjectData

WORDLEVEL_TABLES = ("wordlevel_predictions", "wordlevel_average", "wordlevel_average_terms",
                    "wordlevel_subject_fits", "wordlevel_mixed")


def subjects_table(subjects: list[SubjectData]) -> pd.DataFrame:
    """The tidy rows of every subject (``dataset.meta["table"]`` of the ``wordlevel`` plugin)."""
    return pd.concat([s.dataset.meta["table"] for s in subjects], ignore_index=True)


def model_predictions(model: str, words: pd.DataFrame, *, context: str, window: int, revision: str | None = None,
                      progress: bool = False) -> pd.DataFrame:
    """``words`` (``item``, ``position``, ``word``) with the model's ``surprisal``, ``entropy`` and ``n_tokens``.

    Surprisal and entropy in bits; the context restarts at every item with ``context="reset"``.
    """
    from brainlike.models.surprisal import word_predictions

    lm = load_model(model, revision=revision)
    pred = word_predictions(lm, list(words["word"]), groups=pd.factorize(words["item"])[0], context=context,
                            window=window, progress=progress)
    return words[["item", "position", "word"]].assign(surprisal=pred.surprisal, entropy=pred.entropy,
                                                      n_tokens=pred.n_tokens, bos=pred.bos)


def run_wordlevel(spec, subjects: list[SubjectData], store, console: Console,
                  progress: bool = True) -> dict[str, pd.DataFrame]:
    """Every model's predictions and the word-level regressions (stored; a finished model is reused)."""
    config = subjects[0].dataset.meta["config"]
    words = subjects[0].dataset.meta["words"]
    table = subjects_table(subjects)
    options = spec.analyses.wordlevel.options(spec.seed)
    responses = list(config.responses)
    n_rejected = int(table["reject"].sum())
    console.print(f"word-level: {table['subject'].nunique()} subjects x {len(words)} words, responses "
                  f"{responses}, context {config.context}; {n_rejected} rejected trials excluded")
    for m in spec.models:
        if all(store.has(t, model=m.key) for t in ("wordlevel_predictions", "wordlevel_average")):
            console.print(f"word-level: {m.key} finished earlier, reused")
            continue
        pred = model_predictions(m.name, words, context=config.context, window=config.window, revision=m.revision,
                                 progress=progress)
        n_nan = int((~np.isfinite(pred["surprisal"])).sum())
        if n_nan:
            console.print(f"[yellow]{m.key}: {n_nan} words without a prediction (the first word of each context: "
                          "the model has no BOS token) are left out of its fits[/]")
        merged = table.merge(pred[["item", "position", "surprisal", "entropy"]], on=["item", "position"],
                             how="left")
        part = wordlevel_tables(merged, responses, options, model=m.key)
        part["wordlevel_predictions"] = pred.assign(model=m.key)
        for name in WORDLEVEL_TABLES[::-1]:  # predictions last: "done"
            if name in part:
                store.write(name, part[name], model=m.key)
    keys = [m.key for m in spec.models]
    tables = {}
    for t in WORDLEVEL_TABLES:
        if t in store.tables():
            df = store.read(t)
            tables[t] = df[df["model"].isin(keys)].reset_index(drop=True)
    avg = tables["wordlevel_average"]
    first = avg[avg["response"] == responses[0]]
    tables["brain_scores"] = pd.DataFrame({"model": first["model"], "brain_score": first["r"],
                                           "brain_score_normalized": first.get("r_normalized", np.nan)})
    store.write("brain_scores", tables["brain_scores"])
    return tables
