"""Word-level regressions of per-word responses (ERP amplitudes, reading times) on a model's surprisal.

The input is a tidy table, one row per subject x word (see :mod:`brainlike.datasets.wordlevel`), with
the model's ``surprisal`` and ``entropy`` (bits) beside the responses and covariates. Rows with a NaN
anywhere in the variables of a fit (rejected trials, the unpredictable first word of a context) are
dropped and counted (``n_dropped``).

* :func:`ols_terms`: OLS of a response on predictors + covariates (statsmodels): coefficient, standard
  error, CI and p per term;
* per subject (:func:`per_subject_fits`) and on the across-subject average response per word
  (:func:`average_fit`), beside the split-half Spearman-Brown reliability of that average
  (:func:`split_half_words`) and the correlation of surprisal with it;
* :func:`partial_correlation`: surprisal with the response, controlling the covariates (residualised);
* :func:`mixed_model`: statsmodels ``MixedLM`` with a random intercept per subject (and optionally a
  variance component per item).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from brainlike.errors import BrainlikeError
from brainlike.neural.stats import spearman_brown

#: Table keys of a word: (item, position) identify it across subjects.
WORD_KEYS = ("item", "position")


@dataclass(frozen=True)
class WordLevelOptions:
    """What the word-level analysis fits.

    Attributes
    ----------
    predictors : tuple[str, ...]
        model variables of every fit (``surprisal``, ``entropy``).
    covariates : tuple[str, ...]
        table columns added to every fit (e.g. ``length``, ``position``, ``frequency``,
        ``baseline``); the ones missing from a table are skipped.
    ci : float
        level of every interval.
    n_splits : int
        random halves of the subjects for the split-half ceiling.
    partial : bool
        also the partial correlation of surprisal with the response given the covariates.
    mixed : bool
        also the mixed model (random intercept per subject); ``mixed_item`` adds one per item.
    seed : int
        seed of the splits.
    """

    predictors: tuple[str, ...] = ("surprisal", "entropy")
    covariates: tuple[str, ...] = ("length", "position", "frequency", "baseline")
    ci: float = 0.95
    n_splits: int = 200
    partial: bool = True
    mixed: bool = False
    mixed_item: bool = False
    seed: int = 0


def _complete(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, int]:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BrainlikeError(f"word-level table has no column {missing[0]!r} (columns: {list(frame.columns)})")
    sub = frame[list(dict.fromkeys(columns))]
    if not all(pd.api.types.is_numeric_dtype(t) for t in sub.dtypes):
        sub = sub.apply(pd.to_numeric, errors="coerce")
    keep = np.isfinite(sub.to_numpy(np.float64)).all(axis=1)
    return frame.loc[keep], int((~keep).sum())


def ols_terms(frame: pd.DataFrame, response: str, terms: Sequence[str], *, ci: float = 0.95) -> pd.DataFrame:
    """OLS of ``response`` on ``terms`` (plus an intercept) with statsmodels.

    Parameters
    ----------
    frame : DataFrame
        One row per observation; NaN rows in ``response`` or ``terms`` are dropped.
    response : str
        The response column (its units are the coefficients' numerator, e.g. ms or uV per bit).
    terms : sequence of str
        Predictor and covariate columns.
    ci : float
        Level of the coefficient intervals.

    Returns
    -------
    DataFrame
        One row per term (intercept excluded): ``term``, ``coef``, ``se``, ``ci_low``, ``ci_high``,
        ``t``, ``p``, ``n``, ``n_dropped``, ``r2``.
    """
    import statsmodels.api as sm

    terms = list(dict.fromkeys(terms))
    data, dropped = _complete(frame, [response, *terms])
    n = len(data)
    if n < len(terms) + 2:
        raise BrainlikeError(f"{response}: {n} complete rows for {len(terms)} terms; too few to fit")
    X = sm.add_constant(data[terms].to_numpy(np.float64), has_constant="add")
    fit = sm.OLS(data[response].to_numpy(np.float64), X).fit()
    conf = np.asarray(fit.conf_int(alpha=1 - ci))
    return pd.DataFrame({"term": terms, "coef": fit.params[1:], "se": fit.bse[1:], "ci_low": conf[1:, 0],
                         "ci_high": conf[1:, 1], "t": fit.tvalues[1:], "p": fit.pvalues[1:], "n": n,
                         "n_dropped": dropped, "r2": fit.rsquared})


def per_subject_fits(table: pd.DataFrame, response: str, options: WordLevelOptions) -> pd.DataFrame:
    """:func:`ols_terms` for every subject (rows gain a ``subject`` column)."""
    terms = _terms(table, options)
    rows = [ols_terms(d, response, terms, ci=options.ci).assign(subject=s)
            for s, d in table.groupby("subject", sort=True)]
    return pd.concat(rows, ignore_index=True)


def _terms(table: pd.DataFrame, options: WordLevelOptions) -> list[str]:
    covs = [c for c in options.covariates if c in table.columns and table[c].notna().any()]
    return [*options.predictors, *covs]


def average_response(table: pd.DataFrame, response: str) -> pd.DataFrame:
    """Per word (``item``, ``position``).

    The mean over subjects of ``response`` (NaNs skipped), ``n_subjects`` that contribute, and the mean of every other
    numeric column over the same trials (a per-trial covariate such as ``baseline`` then matches the averaged response).
    """
    keys = list(WORD_KEYS)
    cols = [c for c in table.columns if c not in ("subject", *keys) and pd.api.types.is_numeric_dtype(table[c])
            and not pd.api.types.is_bool_dtype(table[c])]
    if response not in cols:
        raise BrainlikeError(f"word-level table has no numeric column {response!r}")
    valid = np.isfinite(table[response].to_numpy(np.float64))
    # covariates averaged over the same trials as the response
    num = table[cols].where(np.broadcast_to(valid[:, None], (len(table), len(cols))))
    num[keys] = table[keys]
    g = num.groupby(keys, sort=True)
    out = g.mean()
    out["n_subjects"] = g[response].count()
    if "word" in table.columns:
        out = out.join(table.drop_duplicates(keys).set_index(keys)["word"])
    return out.reset_index()


def subject_matrix(table: pd.DataFrame, response: str) -> tuple[np.ndarray, pd.DataFrame]:
    """``(n_subjects, n_words)`` float64 responses (NaN where a subject has no valid value) and the words.

    (``item``, ``position``) of its columns.
    """
    wide = table.pivot_table(index="subject", columns=list(WORD_KEYS), values=response, aggfunc="mean",
                             dropna=False)
    words = wide.columns.to_frame(index=False)
    return wide.to_numpy(np.float64), words


@dataclass(frozen=True)
class WordSplitHalf:
    """Split-half reliability of the across-subject average response per word.

    Attributes
    ----------
    split_half_r : float
        mean over splits of the Pearson r (over words) between the two half-averages.
    reliability : float
        Spearman-Brown ``2 r / (1 + r)`` of ``split_half_r``: of the average over all subjects.
    ceiling : float
        ``sqrt(max(reliability, 0))``: the highest r a perfect predictor reaches against the average.
    low, high : float
        percentile interval (level ``ci``) of the per-split corrected reliabilities.
    n_splits : int
        splits used.
    n_subjects : int
        subjects.
    """

    split_half_r: float
    reliability: float
    ceiling: float
    low: float
    high: float
    n_splits: int
    n_subjects: int


def split_half_words(matrix: np.ndarray, *, n_splits: int = 200, seed: int = 0, ci: float = 0.95) -> WordSplitHalf:
    """Split-half (Spearman-Brown) reliability of the mean over subjects of ``matrix``.

    Random halves of the subjects are averaged (NaNs skipped), the two half-averages are correlated over
    the words where both are defined, the r are averaged over splits and corrected with
    :func:`brainlike.neural.stats.spearman_brown`. Without NaNs this is
    :func:`brainlike.neural.stats.split_half_ceiling` with ``zscore=False`` on one target.

    Parameters
    ----------
    matrix : ndarray
        ``(n_subjects, n_words)`` responses, NaN where missing.

    Raises
    ------
    BrainlikeError
        Fewer than 2 subjects.
    """
    k = matrix.shape[0]
    if k < 2:
        raise BrainlikeError(f"a split-half ceiling needs at least 2 subjects, got {k}")
    rng = np.random.default_rng(seed)
    half = k // 2
    rs = []
    for _ in range(n_splits):
        perm = rng.permutation(k)
        with warnings.catch_warnings():  # a word no subject of a half has: NaN, skipped below
            warnings.simplefilter("ignore", RuntimeWarning)
            a = np.nanmean(matrix[perm[:half]], axis=0)
            b = np.nanmean(matrix[perm[half:]], axis=0)
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() >= 3:
            rs.append(np.corrcoef(a[ok], b[ok])[0, 1])
    rs = np.asarray(rs)
    if not rs.size:
        return WordSplitHalf(np.nan, np.nan, np.nan, np.nan, np.nan, 0, k)
    r = float(rs.mean())
    rel = float(spearman_brown(r))
    lo, hi = np.quantile(spearman_brown(rs), [(1 - ci) / 2, (1 + ci) / 2])
    return WordSplitHalf(r, rel, float(np.sqrt(np.clip(rel, 0, 1))), float(lo), float(hi), len(rs), k)


def correlation_ci(r: float, n: int, k: int = 0, ci: float = 0.95) -> tuple[float, float, float]:
    """``(p, low, high)`` of a (partial) Pearson r over ``n`` observations with ``k`` covariates partialled out.

    T test with ``n - 2 - k`` df, Fisher-z interval with standard error ``1 / sqrt(n - 3 - k)``.
    """
    df = n - 2 - k
    if df < 1 or not np.isfinite(r):
        return np.nan, np.nan, np.nan
    rr = float(np.clip(r, -0.999999999, 0.999999999))
    t = rr * np.sqrt(df / (1 - rr ** 2))
    p = float(2 * stats.t.sf(abs(t), df))
    if n - 3 - k < 1:
        return p, np.nan, np.nan
    z, se = np.arctanh(rr), 1 / np.sqrt(n - 3 - k)
    q = stats.norm.ppf((1 + ci) / 2)
    return p, float(np.tanh(z - q * se)), float(np.tanh(z + q * se))


def partial_correlation(frame: pd.DataFrame, x: str, y: str, covariates: Sequence[str], *,
                        ci: float = 0.95) -> dict:
    """Pearson r of ``x`` and ``y`` after regressing both on ``covariates`` (and an intercept).

    Returns
    -------
    dict
        ``r``, ``p``, ``ci_low``, ``ci_high`` (:func:`correlation_ci`), ``n``, ``n_dropped``, ``n_covariates``.
    """
    covariates = [c for c in dict.fromkeys(covariates) if c not in (x, y)]
    data, dropped = _complete(frame, [x, y, *covariates])
    n = len(data)
    Z = np.column_stack([np.ones(n), data[covariates].to_numpy(np.float64)]) if covariates else np.ones((n, 1))

    def resid(v: np.ndarray) -> np.ndarray:
        beta, *_ = np.linalg.lstsq(Z, v, rcond=None)
        return v - Z @ beta

    rx, ry = resid(data[x].to_numpy(np.float64)), resid(data[y].to_numpy(np.float64))
    den = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    r = float((rx * ry).sum() / den) if den > 0 else np.nan
    p, lo, hi = correlation_ci(r, n, len(covariates), ci)
    return {"r": r, "p": p, "ci_low": lo, "ci_high": hi, "n": n, "n_dropped": dropped,
            "n_covariates": len(covariates)}


def mixed_model(table: pd.DataFrame, response: str, terms: Sequence[str], *, item: bool = False,
                ci: float = 0.95) -> pd.DataFrame:
    """Linear mixed model (statsmodels ``MixedLM``, REML).

    Fixed effects ``terms``, a random intercept per subject and, with ``item``, a variance component per item.

    Returns
    -------
    DataFrame
        One row per fixed term (intercept excluded): ``term``, ``coef``, ``se``, ``ci_low``, ``ci_high``,
        ``p``, ``n``, ``n_dropped``, ``n_subjects``, ``converged``.
    """
    import statsmodels.formula.api as smf

    terms = list(dict.fromkeys(terms))
    cols = [response, *terms]
    data, dropped = _complete(table, cols)
    data = data[[*cols, "subject", *(["item"] if item else [])]].copy()
    names = {c: f"v{i}" for i, c in enumerate(cols)}  # formula-safe names
    data = data.rename(columns=names)
    formula = f"{names[response]} ~ " + " + ".join(names[t] for t in terms)
    kw = {"vc_formula": {"item": "0 + C(item)"}} if item else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm(formula, data, groups=data["subject"], **kw).fit(reml=True)
    conf = fit.conf_int(alpha=1 - ci)
    rows = []
    for t in terms:
        v = names[t]
        rows.append({"term": t, "coef": float(fit.params[v]), "se": float(fit.bse[v]),
                     "ci_low": float(conf.loc[v, 0]), "ci_high": float(conf.loc[v, 1]), "p": float(fit.pvalues[v]),
                     "n": len(data), "n_dropped": dropped, "n_subjects": int(data["subject"].nunique()),
                     "converged": bool(fit.converged)})
    return pd.DataFrame(rows)


def wordlevel_tables(table: pd.DataFrame, responses: Sequence[str], options: WordLevelOptions,
                     model: str) -> dict[str, pd.DataFrame]:
    """Every fit of :class:`WordLevelOptions` for one model's predictions, per response.

    Parameters
    ----------
    table : DataFrame
        One row per subject x word: ``subject``, ``item``, ``position``, ``word``, the responses, the
        covariates, and ``surprisal``/``entropy`` (bits) of ``model``.

    Returns
    -------
    dict of DataFrame
        ``wordlevel_subject_fits`` (per subject, response and term), ``wordlevel_average`` (per response:
        the fit on the across-subject average with ``r``/``partial_r`` of surprisal and the split-half
        ``ceiling``), ``wordlevel_average_terms`` (every term of that fit) and, with ``mixed``,
        ``wordlevel_mixed``. Every row carries ``model`` and ``response``.
    """
    terms = _terms(table, options)
    covs = terms[len(options.predictors):]
    subj, avg, avg_terms, mixed = [], [], [], []
    n_subjects = table["subject"].nunique()
    for resp in responses:
        if n_subjects > 1:
            subj.append(per_subject_fits(table, resp, options).assign(response=resp))
        mean = average_response(table, resp)
        fit = ols_terms(mean, resp, terms, ci=options.ci)
        avg_terms.append(fit.assign(response=resp))
        s = fit.set_index("term").loc["surprisal"] if "surprisal" in terms else None
        data, dropped = _complete(mean, [resp, "surprisal"])
        r = float(np.corrcoef(data["surprisal"], data[resp])[0, 1]) if len(data) > 2 else np.nan
        p, lo, hi = correlation_ci(r, len(data), 0, options.ci)
        row = {"response": resp, "n_words": len(data), "n_dropped": dropped, "n_subjects": n_subjects,
               "r": r, "r_p": p, "r_ci_low": lo, "r_ci_high": hi}
        if s is not None:
            row.update({"slope": s["coef"], "slope_ci_low": s["ci_low"], "slope_ci_high": s["ci_high"],
                        "slope_p": s["p"], "r2": s["r2"]})
        if options.partial and "surprisal" in table.columns:
            pc = partial_correlation(mean, "surprisal", resp, covs, ci=options.ci)
            row.update({"partial_r": pc["r"], "partial_p": pc["p"], "partial_ci_low": pc["ci_low"],
                        "partial_ci_high": pc["ci_high"], "partial_covariates": ",".join(covs)})
        if n_subjects > 1:
            mat, _ = subject_matrix(table, resp)
            sh = split_half_words(mat, n_splits=options.n_splits, seed=options.seed, ci=options.ci)
            row.update({"split_half_r": sh.split_half_r, "reliability": sh.reliability, "ceiling": sh.ceiling,
                        "reliability_low": sh.low, "reliability_high": sh.high,
                        "r_normalized": r / sh.ceiling if sh.ceiling > 0.1 else np.nan})
        avg.append(row)
        if options.mixed and n_subjects > 1:
            mixed.append(mixed_model(table, resp, terms, item=options.mixed_item, ci=options.ci).assign(response=resp))
    out = {"wordlevel_average": pd.DataFrame(avg), "wordlevel_average_terms": pd.concat(avg_terms, ignore_index=True)}
    if subj:
        out["wordlevel_subject_fits"] = pd.concat(subj, ignore_index=True)
    if mixed:
        out["wordlevel_mixed"] = pd.concat(mixed, ignore_index=True)
    for df in out.values():
        df.insert(0, "model", model)
    return out
