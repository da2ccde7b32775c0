"""The alignment analysis on fMRI: every model's layers → TR features → calibrated encoding at three levels.

For an fMRI dataset (``modality == "fmri"``, e.g. ``brennan2016`` or ``bids-fmri``) the subjects' time
courses are stacked as ``(n_subjects, n_volumes, n_rois)`` and every layer of every model is scored by
:mod:`brainlike.analyses.fmri_encoding` at the levels of the spec (``group``: the mean of the z-scored
subjects; ``single``: every subject; ``between``: fit on the others' mean, score on the held-out
subject), each score with its refitted circular-shift null. Beside the models: a low-level control
"model" (word rate, plus the dataset's own low-level regressors such as sound power), noise ceilings
(split-half for the group mean, leave-one-subject-out ISC for subjects) and ceiling-normalised scores.
With ``analyses.shuffled_words`` the runner adds every trained model's shuffled-word baseline
(``<model>@shuffled``, :mod:`brainlike.pipelines.shuffled_words`) as one more model.

Tables (all in the results store):

* ``fmri_scores``: one row per (model, level, subject, roi, layer): ``r`` (mean over folds of the
  held-out Pearson r: the headline score), ``null_mean``, ``null_sd``, ``p`` (empirical, per layer),
  ``r_pooled`` (labelled extra: negatively biased under the null), ``alpha``;
* ``fmri_best``: per (model, level, subject, roi): the best layer, its ``r`` and ``p_max`` (max over
  layers of the null: corrected for choosing the layer), ``ceiling``, ``r_normalized``;
* ``fmri_group``: per (model, level ∈ single/between, roi): the group test of the subjects' best-layer
  scores minus their null means (``effect`` with a bootstrap CI over subjects, empirical / sign-flip /
  t-test p, FDR q across ROIs), plus the median subject r with its CI and how many subjects are
  significant (``p_max`` FDR-corrected across the subjects and ROIs of a model);
* ``fmri_layer_ci``: per (model, level, roi, layer): the mean over subjects of ``r`` with a bootstrap CI;
* ``fmri_null``: the group-level null distribution at every model's best layer (for the figure);
* ``fmri_variance_partition``: per (model, roi), at the model's best group-level layer: cross-validated
  R^2 of the low-level controls alone, the LM alone and both (banded ridge), and what the LM adds
  (``unique_lm``) with its refitted circular-shift null (``unique_lm_null_mean``, ``unique_lm_p``, FDR
  ``unique_lm_q`` across ROIs; the layer null's shifts) and, with the single level, the subjects' mean
  unique R^2 with a bootstrap CI over subjects (``single_unique_lm_*``, no null at that level);
* ``fmri_calibration``: per (model, level, roi, and over all ROIs): the run's own null, each shifted copy
  in turn playing the observed data: null mean of the headline score and the false-positive rates of the
  per-layer, best-layer and group tests (:mod:`brainlike.pipelines.fmri_calibration`);
* ``noise_ceilings``: per ROI.

``fmri_best`` also holds ``null_max_median`` and ``null_max_q95``, the median and 95th percentile of the
max-over-layers null that the best layer's ``r`` is tested against.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from rich.console import Console

from brainlike.analyses.fmri_encoding import (
    FMRIEncodingOptions,
    LayerScores,
    encode_between,
    encode_group,
    encode_single,
)
from brainlike.analyses.inference import bootstrap_ci_subjects, group_test
from brainlike.errors import BrainlikeError, RunInterrupted
from brainlike.models import Features
from brainlike.neural.fmri import fmri_design, fmri_design_layers
from brainlike.neural.sources import SubjectData, check_same_words
from brainlike.neural.stats import fdr_correction, noise_ceiling_table
from brainlike.pipelines.fmri_calibration import calibration_rows
from brainlike.stimulus import Stimulus

LEVEL_FUNCTIONS = {"group": encode_group, "single": encode_single, "between": encode_between}
CONTROL_MODEL = "low-level controls"
FMRI_TABLES = ("fmri_scores", "fmri_best", "fmri_group", "fmri_layer_ci", "fmri_null", "fmri_variance_partition",
               "fmri_calibration")


def stack_subjects(subjects: list[SubjectData]) -> tuple[np.ndarray, tuple[str, ...], list[str], Stimulus, float]:
    """``(data (n_subjects, n_volumes, n_rois), rois, subject labels, words on the volume clock, tr)``.

    Words are shifted so that the first volume is at 0 s (the fMRI design puts volume ``i`` at ``i * tr``).
    """
    if not subjects:
        raise BrainlikeError("the fMRI dataset has no subjects")
    check_same_words(subjects)
    first = subjects[0].dataset
    rois = tuple(first.channels)
    for s in subjects[1:]:
        ds = s.dataset
        if tuple(ds.channels) != rois or ds.n_samples != first.n_samples:
            raise BrainlikeError(f"{ds.subject}: {ds.n_samples} volumes x {ds.n_channels} targets, but "
                                 f"{first.subject} has {first.n_samples} x {first.n_channels}; one fMRI spec fits "
                                 "subjects with the same volumes and the same ROIs")
    tr = float(first.meta.get("tr") or np.median(np.diff(first.times)))
    data = np.stack([s.dataset.data.astype(np.float64) for s in subjects])
    stim = subjects[0].stimulus
    shift = float(first.times[0])
    stim = Stimulus(stim.words, stim.onsets - shift, stim.offsets - shift, stim.name)
    return data, rois, [s.dataset.subject for s in subjects], stim, tr


def word_rate(stim: Stimulus, n_volumes: int, tr: float) -> np.ndarray:
    """``(n_volumes, 1)`` float32 word rate: the Lanczos sum of ones at the word onsets, undelayed."""
    return fmri_design(np.ones((len(stim), 1)), stim, n_volumes, tr=tr, delays=(0,), trim_start=0, trim_end=0).X


def control_design(subjects: list[SubjectData], stim: Stimulus, n_volumes: int, tr: float,
                   word_controls: np.ndarray | None = None) -> np.ndarray:
    """``(1, n_volumes, k)`` low-level regressors.

    Word rate from the words, plus the mean over subjects of every control the dataset provides in
    ``dataset.meta["controls"]`` (e.g. sound power) but word rate, plus ``word_controls`` ``(n_words, j)`` per-word
    values (e.g. surprisal and entropy, bits) resampled to the volumes like any word feature
    (:func:`brainlike.neural.fmri.fmri_design`).
    """
    cols = [word_rate(stim, n_volumes, tr)]
    if word_controls is not None:
        cols.append(fmri_design(np.asarray(word_controls, dtype=np.float64), stim, n_volumes, tr=tr, delays=(0,),
                                trim_start=0, trim_end=0).X)
    names = sorted(set().union(*[set(s.dataset.meta.get("controls", {})) for s in subjects]) - {"word_rate"})
    for name in names:
        arr = np.stack([np.asarray(s.dataset.meta["controls"][name], dtype=np.float64) for s in subjects])
        cols.append(arr.reshape(len(subjects), n_volumes, -1).mean(axis=0))
    X = np.concatenate(cols, axis=1)
    return X[None].astype(np.float32)


def _level_rows(ls: LayerScores, model: str, level: str, layers: list[int], n_layers: int, subjects: list[str],
                rois: tuple[str, ...]) -> pd.DataFrame:
    p, null_mean, null_sd = ls.pvalues(), ls.null_mean(), ls.null.std(axis=1, dtype=np.float64)
    n_targets = ls.scores.shape[1]
    if level == "group":
        subj = np.array(["group"] * n_targets)
        roi = np.array(rois)
    else:
        subj = np.repeat(subjects, len(rois))
        roi = np.tile(rois, len(subjects))
    frames = []
    for i, k in enumerate(layers):
        frames.append(pd.DataFrame({
            "model": model, "level": level, "subject": subj, "roi": roi, "layer": k,
            "relative_layer": k / max(n_layers - 1, 1), "r": ls.scores[i], "null_mean": null_mean[i],
            "null_sd": null_sd[i], "p": p[i], "r_pooled": ls.pooled_r[i],
            "alpha": np.median(ls.alphas[i], axis=0)}))
    return pd.concat(frames, ignore_index=True)


def _best_rows(ls: LayerScores, model: str, level: str, layers: list[int], n_layers: int, subjects: list[str],
               rois: tuple[str, ...], ceiling: np.ndarray) -> pd.DataFrame:
    best, score, p_max = ls.max_over_layers()
    layer = np.asarray(layers)[best]
    best_null = ls.null.max(axis=0).astype(np.float64)     # (n_shifts, n_targets): the null of the best layer's r
    q50, q95 = (np.quantile(best_null, q, axis=0) if len(best_null) else np.full(score.shape, np.nan)
                for q in (0.5, 0.95))
    if level == "group":
        subj, roi, ceil = np.array(["group"] * len(rois)), np.array(rois), ceiling
    else:
        subj, roi = np.repeat(subjects, len(rois)), np.tile(rois, len(subjects))
        ceil = np.tile(ceiling, len(subjects))
    return pd.DataFrame({"model": model, "level": level, "subject": subj, "roi": roi, "best_layer": layer,
                         "best_relative_layer": layer / max(n_layers - 1, 1), "r": score, "p_max": p_max,
                         "ceiling": ceil, "r_normalized": np.where(ceil > 0.1, score / np.maximum(ceil, 1e-12),
                                                                    np.nan),
                         "null_max_median": q50, "null_max_q95": q95})


def _group_rows(ls: LayerScores, model: str, level: str, rois: tuple[str, ...], significance: float,
                seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Group test on the subjects' best-layer scores, and the per-layer mean over subjects with its bootstrap CI.

    The null of the group test: max over layers per shift.
    """
    scores = ls.unfold(ls.scores)                          # (L, S, R)
    null = ls.unfold(ls.null).astype(np.float64)            # (L, n_shifts, S, R)
    best = scores.max(axis=0)                               # (S, R)
    best_null = null.max(axis=0)                            # (n_shifts, S, R): the same shift for every layer
    gt = group_test(best, best_null, alpha=significance, seed=seed)
    _, _, p_max = ls.max_over_layers()
    sig = fdr_correction(p_max, significance).significant.reshape(best.shape)
    med = np.median(best, axis=0)
    lo, hi = bootstrap_ci_subjects(best, n_boot=2000, seed=seed, statistic=np.median)
    group = pd.DataFrame({"model": model, "level": level, "roi": list(rois), "effect": gt.effect,
                          "ci_low": gt.ci_low, "ci_high": gt.ci_high, "p": gt.p_empirical,
                          "p_signflip": gt.p_signflip, "p_ttest": gt.p_ttest, "q": gt.q_empirical,
                          "significant": gt.significant, "median_r": med, "median_r_ci_low": lo,
                          "median_r_ci_high": hi, "n_significant_subjects": sig.sum(axis=0),
                          "n_subjects": best.shape[0]})
    rows = []
    for i in range(scores.shape[0]):
        lo_i, hi_i = bootstrap_ci_subjects(scores[i], n_boot=2000, seed=seed)
        rows.append(pd.DataFrame({"model": model, "level": level, "roi": list(rois), "layer_index": i,
                                  "mean_r": scores[i].mean(axis=0), "ci_low": lo_i, "ci_high": hi_i}))
    return group, pd.concat(rows, ignore_index=True)


def _partition_rows(key: str, X: np.ndarray, chosen: list[int], ls: LayerScores, data: np.ndarray,
                    subjects: list[SubjectData], stim: Stimulus, tr: float, rois: tuple[str, ...],
                    options: FMRIEncodingOptions, word_controls: np.ndarray | None = None,
                    significance: float = 0.05, single: bool = False, seed: int = 0,
                    feature_shifts: int = 0) -> pd.DataFrame:
    """Variance partition of the layer with the best mean group-level r against the low-level controls.

    The controls (plus ``word_controls``, e.g. surprisal, when given), with the refitted circular-shift null of the
    unique R^2 on the group mean (the layer null's shifts), with ``feature_shifts`` > 0 the stricter null (only the
    LM columns shifted, controls and targets aligned; ``unique_lm_p_features``, ``unique_lm_q_features``) and, with
    ``single``, the subjects' unique R^2 with a CI over subjects.
    """
    from brainlike.analyses.fmri_encoding import zscore_subjects
    from brainlike.analyses.variance_partition import variance_partitioning

    i = int(np.argmax(ls.scores.mean(axis=1)))
    ctl = control_design(subjects, stim, data.shape[1], tr, word_controls)[0]
    z = zscore_subjects(data)
    s, n, r = z.shape
    single = single and s >= 2
    # one set of fits: the group mean (with its shifted copies) beside every subject x ROI (no null)
    Y = np.hstack([z.mean(axis=0), z.transpose(1, 0, 2).reshape(n, s * r)]) if single else z.mean(axis=0)
    vp = variance_partitioning(X[i], ctl, Y, options, n_shifts=options.n_shifts, n_null_targets=r,
                               n_feature_shifts=feature_shifts)
    p = vp.pvalues_unique_lm()[:r]
    out = pd.DataFrame({"model": key, "layer": chosen[i], "roi": list(rois), "r2_controls": vp.r2_controls[:r],
                        "r2_lm": vp.r2_lm[:r], "r2_joint": vp.r2_joint[:r], "unique_lm": vp.unique_lm[:r],
                        "unique_controls": vp.unique_controls[:r], "shared": vp.shared[:r],
                        "r_joint": vp.r_joint[:r]})
    return out.assign(**_partition_null_columns(vp, p, significance),
                      **_feature_null_columns(vp, r, significance),
                      **_subject_partition_columns(vp.unique_lm[r:].reshape(-1, r) if single else None, r, seed))


def _partition_null_columns(vp, p: np.ndarray, significance: float) -> dict[str, np.ndarray]:
    """The refitted shift null of the group-level unique R^2: its mean and SD, p per ROI and FDR q across ROIs."""
    if vp.null_unique_lm is None or not len(vp.null_unique_lm):
        nan = np.full(p.shape, np.nan)
        return {"unique_lm_null_mean": nan, "unique_lm_null_sd": nan, "unique_lm_p": nan, "unique_lm_q": nan,
                "n_shifts": 0}
    q = fdr_correction(p, significance).qvalues
    nu = vp.null_unique_lm
    return {"unique_lm_null_mean": nu.mean(axis=0), "unique_lm_null_sd": nu.std(axis=0), "unique_lm_p": p,
            "unique_lm_q": q, "n_shifts": len(nu)}


def _feature_null_columns(vp, n_rois: int, significance: float) -> dict[str, np.ndarray]:
    """The stricter null of the group-level unique R^2 (LM columns shifted): its 95th percentile, p and FDR q.

    NaN (and ``n_feature_shifts`` 0) when the run asked for none.
    """
    nu = vp.null_unique_lm_features
    if nu is None or not len(nu):
        nan = np.full(n_rois, np.nan)
        return {"unique_lm_null_features_q95": nan, "unique_lm_p_features": nan, "unique_lm_q_features": nan,
                "n_feature_shifts": 0}
    p = vp.pvalues_unique_lm(null="features")[:n_rois]
    return {"unique_lm_null_features_q95": np.quantile(nu, 0.95, axis=0), "unique_lm_p_features": p,
            "unique_lm_q_features": fdr_correction(p, significance).qvalues, "n_feature_shifts": len(nu)}


def _subject_partition_columns(unique: np.ndarray | None, n_rois: int, seed: int) -> dict[str, np.ndarray]:
    """The subjects' unique R^2 ``(n_subjects, n_rois)`` of the same layer (no null).

    The mean over subjects with a bootstrap 95 % CI over subjects (NaN when None: no single level in the spec).
    """
    if unique is None:
        nan = np.full(n_rois, np.nan)
        return {"single_unique_lm_mean": nan, "single_unique_lm_ci_low": nan, "single_unique_lm_ci_high": nan}
    lo, hi = bootstrap_ci_subjects(unique, n_boot=2000, seed=seed)
    return {"single_unique_lm_mean": unique.mean(axis=0), "single_unique_lm_ci_low": lo,
            "single_unique_lm_ci_high": hi}


def fmri_alignment(models: dict[str, tuple[Features, list[int] | None]], subjects: list[SubjectData],
                   options: FMRIEncodingOptions, levels: list[str], *, controls: bool = True,
                   partition: bool = False, word_controls: np.ndarray | None = None,
                   significance: float = 0.05, seed: int = 0, console: Console | None = None,
                   progress: bool = True, partition_feature_shifts: int = 0) -> dict[str, pd.DataFrame]:
    """Score every model's layers on the fMRI subjects at every level (see the module docstring).

    Parameters
    ----------
    models : dict
        ``{model key: (Features, layers)}``: word features ``(n_layers, n_words, hidden)`` and the layer
        indices to fit (None: all).
    subjects : list of SubjectData
        fMRI recordings of one stimulus (same words, volumes and ROIs).
    options : FMRIEncodingOptions
    levels : list of {"group", "single", "between"}
    controls : bool
        Also score the low-level control regressors (word rate, the dataset's controls).
    partition : bool
        Variance partitioning of every model's best group-level layer against the low-level controls
        (controls-only, LM-only and joint banded ridge on the group mean: the R^2 the LM adds).
    word_controls : ndarray, optional
        ``(n_words, j)`` per-word regressors added to the control band (e.g. a model's surprisal and
        entropy, ``analyses.surprisal_control``).
    partition_feature_shifts : int
        With ``partition``: circular shifts of the LM columns only for the stricter null of the unique R^2
        (0: none).

    Returns
    -------
    dict of DataFrame
        ``fmri_scores``, ``fmri_best``, ``fmri_group``, ``fmri_layer_ci``, ``fmri_null``, ``noise_ceilings``
        and, with ``partition``, ``fmri_variance_partition``.
    """
    console = console or Console(stderr=True)
    data, rois, labels, stim, tr = stack_subjects(subjects)
    n_vol = data.shape[1]
    if options.tr != tr:
        options = FMRIEncodingOptions(**{**options.__dict__, "tr": tr})
    ceil = noise_ceiling_table(data, rois, seed=seed)
    ceiling = {"group": ceil["group_ceiling"].to_numpy(), "single": ceil["loo_isc"].to_numpy(),
               "between": ceil["loo_isc"].to_numpy()}
    designs: dict[str, tuple[np.ndarray, list[int], int]] = {}
    for key, (feats, layers) in models.items():
        n_layers = feats.n_layers
        chosen = list(range(n_layers)) if layers is None else list(layers)
        X = fmri_design_layers(feats.layers[chosen] if layers is not None else feats, stim, n_vol, tr=tr,
                               delays=(0,), trim_start=0, trim_end=0).X
        designs[key] = (X, chosen, n_layers)
    if controls:
        designs[CONTROL_MODEL] = (control_design(subjects, stim, n_vol, tr, word_controls), [0], 1)
    out: dict[str, list[pd.DataFrame]] = {k: [] for k in FMRI_TABLES}
    for key, (X, chosen, n_layers) in designs.items():
        for level in levels:
            console.print(f"fMRI encoding: {key}, {level} level ({len(chosen)} layers, {len(labels)} subjects x "
                          f"{len(rois)} ROIs, {options.n_shifts} refitted shifts)")
            ls = LEVEL_FUNCTIONS[level](X, data, options, progress=progress)
            out["fmri_scores"].append(_level_rows(ls, key, level, chosen, n_layers, labels, rois))
            out["fmri_best"].append(_best_rows(ls, key, level, chosen, n_layers, labels, rois, ceiling[level]))
            out["fmri_calibration"].append(calibration_rows(ls, key, level, rois, n_vol, alpha=significance,
                                                            seed=seed))
            if level == "group" and partition and key != CONTROL_MODEL:
                out["fmri_variance_partition"].append(
                    _partition_rows(key, X, chosen, ls, data, subjects, stim, tr, rois, options, word_controls,
                                    significance, "single" in levels, seed, partition_feature_shifts))
            if level == "group":
                best, _, _ = ls.max_over_layers()
                for j, roi in enumerate(rois):
                    out["fmri_null"].append(pd.DataFrame({"model": key, "roi": roi, "layer": chosen[best[j]],
                                                          "null_r": ls.null[best[j], :, j].astype(np.float64),
                                                          "observed_r": ls.scores[best[j], j]}))
            else:
                g, layer_ci = _group_rows(ls, key, level, rois, significance, seed)
                layer_ci["layer"] = np.asarray(chosen)[layer_ci.pop("layer_index").to_numpy()]
                layer_ci["relative_layer"] = layer_ci["layer"] / max(n_layers - 1, 1)
                out["fmri_group"].append(g)
                out["fmri_layer_ci"].append(layer_ci)
    tables = {k: pd.concat(v, ignore_index=True) for k, v in out.items() if v}
    tables["noise_ceilings"] = ceil
    return tables


def fmri_summary(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The headline table.

    Per (model, roi): group-level best-layer r (p corrected for the layer choice), its ceiling and normalised r; the
    single-subject group test and counts; the between-subject r.
    """
    best = tables["fmri_best"]
    g = best[best["level"] == "group"][["model", "roi", "best_relative_layer", "r", "p_max", "ceiling",
                                        "r_normalized"]].rename(columns={"r": "group_r", "p_max": "group_p",
                                                                         "ceiling": "group_ceiling",
                                                                         "r_normalized": "group_r_normalized"})
    out = g
    if "fmri_group" in tables:
        grp = tables["fmri_group"]
        for level in ("single", "between"):
            d = grp[grp["level"] == level][["model", "roi", "median_r", "median_r_ci_low", "median_r_ci_high",
                                            "effect", "ci_low", "ci_high", "p", "q", "n_significant_subjects",
                                            "n_subjects"]]
            if len(d):
                d = d.rename(columns={c: f"{level}_{c}" for c in d.columns if c not in ("model", "roi")})
                out = out.merge(d, on=["model", "roi"], how="outer") if len(out) else d
    return out.reset_index(drop=True)


def brain_scores_fmri(summary: pd.DataFrame) -> pd.DataFrame:
    """Per model: ``brain_score`` = mean over ROIs of the group-level best-layer r, its ceiling-normalised version.

    And the mean best relative layer (the columns the capability correlation reads).
    """
    g = summary.groupby("model", sort=False)
    return pd.DataFrame({"brain_score": g["group_r"].mean(), "brain_score_normalized": g["group_r_normalized"].mean(),
                         "mean_best_relative_layer": g["best_relative_layer"].mean(),
                         "n_rois": g.size()}).reset_index()


def run_fmri(spec, features: dict[str, Features], subjects: list[SubjectData], store, console: Console,
             progress: bool = True) -> dict[str, pd.DataFrame]:
    """The fMRI branch of the alignment analysis.

    Per model (resumable: a finished model's pieces are reused), the low-level controls, noise ceilings, the summary and
    per-model brain scores (stored).
    """
    fm = spec.encoding.fmri
    options = fm.options(spec.seed, spec.encoding.inner_splits, spec.encoding.alphas, spec.encoding.backend)
    levels = list(dict.fromkeys(fm.levels))
    todo: dict[str, tuple[Features, list[int] | None] | None] = {k: (f, fm.layers(f.n_layers))
                                                                for k, f in features.items()}
    if spec.analyses.controls:
        todo[CONTROL_MODEL] = None
    word_controls = surprisal_controls(spec, subjects, console)
    for i, (key, item) in enumerate(todo.items()):
        if all(store.has(t, model=key) for t in ("fmri_scores", "fmri_best")):
            console.print(f"fMRI encoding: {key} finished earlier, reused")
            continue
        try:
            part = _fit_one(key, item, subjects, options, levels, spec, console, progress, word_controls)
        except KeyboardInterrupt:
            raise RunInterrupted(i, len(todo), "models (fMRI encoding)") from None
        for name in (*[t for t in FMRI_TABLES if t != "fmri_scores"], "fmri_scores"):  # scores last: "done"
            if name in part:
                store.write(name, part[name], model=key)
        if not store.has("noise_ceilings"):
            store.write("noise_ceilings", part["noise_ceilings"])
    return _collect(store, list(todo))


def surprisal_controls(spec, subjects: list[SubjectData], console: Console) -> np.ndarray | None:
    """``(n_words, 2)`` surprisal and entropy (bits) of ``analyses.surprisal_control``, for the control band.

    On the story (one continuous context); None when the spec does not ask for it.
    """
    name = getattr(spec.analyses, "surprisal_control", None)
    if not name:
        return None
    from brainlike.models import load_model
    from brainlike.models.surprisal import surprisal_features

    feats = surprisal_features(load_model(name), subjects[0].stimulus, name)
    console.print(f"control band: + surprisal and entropy of {name} ({feats.options['n_imputed']} words without a "
                  "prediction set to the mean)")
    return np.asarray(feats.layers[0], dtype=np.float64)


def _fit_one(key, item, subjects, options, levels, spec, console, progress,
             word_controls: np.ndarray | None = None) -> dict[str, pd.DataFrame]:
    """One model's tables (``item`` None: the low-level controls)."""
    return fmri_alignment({} if item is None else {key: item}, subjects, options, levels,
                          controls=item is None, partition=item is not None and spec.analyses.controls,
                          word_controls=word_controls,
                          significance=spec.encoding.significance, seed=spec.seed, console=console,
                          progress=progress, partition_feature_shifts=spec.encoding.fmri.partition_feature_shifts)


def _collect(store, keys: list[str]) -> dict[str, pd.DataFrame]:
    """The stored fMRI tables of these models, the summary and the per-model brain scores (stored too)."""
    tables = {t: store.read(t) for t in (*FMRI_TABLES, "noise_ceilings") if t in store.tables()}
    for t in FMRI_TABLES:  # only this spec's models (a store may hold others from earlier specs)
        if t in tables:
            tables[t] = tables[t][tables[t]["model"].isin(keys)].reset_index(drop=True)
    tables["fmri_summary"] = fmri_summary(tables)
    tables["brain_scores"] = brain_scores_fmri(tables["fmri_summary"])
    for name in ("fmri_summary", "brain_scores"):
        store.write(name, tables[name])
    return tables
