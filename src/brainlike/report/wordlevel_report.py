"""Report sections of an alignment run on a word-level dataset (per-word responses vs surprisal)."""
from __future__ import annotations

import pandas as pd

from brainlike.report.html import Section


def plot_surprisal_slopes(avg_terms: pd.DataFrame, ax=None):
    """The surprisal slope (with its CI) of the across-subject average, per model and response."""
    from brainlike.plotting import fig_ax

    rows = avg_terms[avg_terms["term"] == "surprisal"].reset_index(drop=True)
    fig, ax = fig_ax(ax, size=(6, 1.2 + 0.4 * max(len(rows), 1)))
    labels = [f"{m} · {r}" for m, r in zip(rows["model"], rows["response"])]
    y = range(len(rows))
    ax.errorbar(rows["coef"], list(y), xerr=[rows["coef"] - rows["ci_low"], rows["ci_high"] - rows["coef"]],
                fmt="o", capsize=3)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(list(y), labels)
    ax.set_xlabel("response units per bit of surprisal (95% CI)")
    fig.tight_layout()
    return fig


def wordlevel_sections(tables: dict[str, pd.DataFrame]) -> list[Section]:
    """The report sections of a word-level run."""
    avg = tables["wordlevel_average"]
    sections = [Section(
        "Per-word responses and surprisal",
        "Each model's surprisal (bits, -log2 p(word | preceding text)) and entropy against the across-subject "
        "average response per word: OLS slope with covariates, Pearson r (Fisher-z CI), partial r given the "
        "covariates, and the split-half (Spearman-Brown) reliability of the average as its ceiling.",
        [("surprisal slope per model and response", plot_surprisal_slopes(tables["wordlevel_average_terms"]))],
        [("average response: fits per model", avg), ("every term of the average fit",
                                                     tables["wordlevel_average_terms"])])]
    if "wordlevel_subject_fits" in tables:
        subj = tables["wordlevel_subject_fits"]
        s = subj[subj["term"] == "surprisal"]
        summary = s.groupby(["model", "response"], as_index=False).agg(
            mean_slope=("coef", "mean"), n_subjects=("subject", "nunique"),
            n_significant=("p", lambda p: int((p < 0.05).sum())))
        sections.append(Section("Per-subject fits", "OLS per subject of the response on surprisal, entropy and "
                                "the covariates; the number of subjects whose surprisal slope has p < .05.", [],
                                [("surprisal slope over subjects", summary)]))
    if "wordlevel_mixed" in tables:
        sections.append(Section("Mixed model", "statsmodels MixedLM (REML): random intercept per subject "
                                "(and per item when asked).", [], [("fixed effects", tables["wordlevel_mixed"])]))
    return sections
