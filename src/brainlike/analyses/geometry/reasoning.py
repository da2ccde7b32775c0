"""The paper's chain on a task the models can solve: context → intrinsic dimension at late layers → accuracy.

``run_geometry(config)`` with ``task: arithmetic`` lands here (:func:`run_arithmetic_geometry`). For
every causal model and every context condition — ``examples-k`` (``k`` worked examples, ``k`` in
``shots``) and, for ``k > 0``, the length-matched controls ``irrelevant-k`` (neutral text of the same
token length) and ``shuffled-k`` (the same examples with wrong answers) — every generated item is run
once (attention, MLP inputs) and answered greedily. Per layer: intrinsic dimension (TwoNN, MLE) of the
MLP inputs over the *question* tokens (the same text in every condition, so only the context differs),
attention density, and the number of distinct activation patterns of the layer's real MLP (sign of its
first projection, the SwiGLU gate) beside the Zaslavsky bound. CIs: half-sampling of questions
(paired across conditions, :mod:`.resampled_id`); nulls: a question-wise swap of the two conditions
(ID), exact McNemar (accuracy), and a permutation of accuracies across conditions (correlation).
Encoders cannot answer and are excluded with a note.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from brainlike.analyses.geometry.arithmetic import (
    build_task_prompt,
    chance_rate,
    check_answer,
    generate_items,
    parse_integer,
)
from brainlike.analyses.geometry.attention import attention_graph_stats, query_rows_stats
from brainlike.analyses.geometry.capture import capture_batch, capture_prompt
from brainlike.analyses.geometry.linear_regions import integer_dimension, log10_linear_region_bound
from brainlike.analyses.geometry.modules import attention_heads, mlp_modules, mlp_width
from brainlike.analyses.geometry.resampled_id import (
    bootstrap_draws,
    centred_ci,
    distance_matrix,
    distinct_points,
    resampled_ids,
    swap_null,
)
from brainlike.errors import BrainlikeError
from brainlike.models.loading import LoadedModel, load_model

#: Attention measures reported per layer (mean over heads, then over prompts). The first three read every
#: query of the prompt; the ``q_`` ones only the question tokens' queries (:func:`query_rows_stats`).
DENSITY_MEASURES: tuple[str, ...] = ("density", "relative_density", "effective_density", "q_effective_density",
                                     "q_normalized_entropy")
#: The measure of the length-free attention test (question-token queries, against length-matched controls).
DENSITY_TEST_MEASURE = "q_effective_density"


def task_conditions(shots: list[int], controls: list[str]) -> list[tuple[str, str, int]]:
    """``(condition, context, k)`` for every condition.

    ``examples-k`` per ``k``, then the controls of each ``k > 0`` (``irrelevant-k``, ``shuffled-k``).
    """
    out = [(f"examples-{k}", "examples", k) for k in shots]
    out += [(f"{c}-{k}", c, k) for k in shots if k > 0 for c in controls]
    return out


def _gate(mlp: torch.nn.Module, hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """Weight ``(width, hidden)`` and bias ``(width,)`` of the MLP's first projection reading ``hidden``."""
    for mod in mlp.modules():
        if isinstance(mod, torch.nn.Linear) and mod.in_features == hidden:
            w = mod.weight.detach().float().cpu().numpy()
            b = mod.bias.detach().float().cpu().numpy() if mod.bias is not None else np.zeros(len(w), np.float32)
            return w, b
    raise BrainlikeError(f"{type(mlp).__name__}: no linear layer reading {hidden} inputs to take patterns from")


def count_patterns(X: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> int:
    """Distinct on/off patterns ``(X @ weight.T + bias) > 0`` over the rows of ``X`` (``(n, hidden)``)."""
    pre = X.astype(np.float32) @ weight.T + bias
    return int(len(np.unique(np.packbits(pre > 0, axis=1), axis=0)))


def _ci(values: np.ndarray) -> tuple[float, float]:
    """CI from ``values = [full-sample estimate, draw 1, ...]`` (:func:`centred_ci`)."""
    v = np.asarray(values, float)
    return centred_ci(float(v[0]), v[1:])


@dataclass
class _Captured:
    points: list[list[np.ndarray]]  # [layer][question] -> (n_tok, hidden) float16
    density: np.ndarray  # (n_questions, n_layers, n_measures)
    correct: np.ndarray  # (n_questions,) bool
    rows: list[dict]


def _capture_condition(lm: LoadedModel, items, context: str, k: int, config, desc: str) -> _Captured:
    causal = lm.kind == "causal"
    points: list[list[np.ndarray]] = [[] for _ in range(lm.n_layers)]
    density = np.zeros((len(items), lm.n_layers, len(DENSITY_MEASURES)))
    correct = np.zeros(len(items), dtype=bool)
    rows = []
    built = [build_task_prompt(item, context, k, lm.tokenizer, config.seed) for item in items]
    n_gen = config.max_new_tokens if config.accuracy else 0
    # one pass per prompt: its forward is also the prefill of the greedy answer; prompts of similar length
    # share a right-padded batch (capture_batch gives each prompt's own unbatched numbers)
    order = sorted(range(len(items)), key=lambda q: len(built[q][0]))
    caps: list = [None] * len(items)
    size = max(1, config.batch_size)
    for start in tqdm(range(0, len(order), size), desc=desc, disable=not config.progress, leave=False):
        chunk = order[start:start + size]
        if size == 1:
            got = [capture_prompt(lm, built[chunk[0]][0], mlp_path=config.mlp_path, generate_tokens=n_gen)]
        else:
            got = capture_batch(lm, [built[q][0] for q in chunk], generate_tokens=n_gen, mlp_path=config.mlp_path)
        for q, cap in zip(chunk, got):
            caps[q] = cap
    for q, item in enumerate(items):
        prompt, span, prefix = built[q]
        cap, caps[q] = caps[q], None
        question_rows = cap.scope_mask(span)
        for layer in range(lm.n_layers):
            stats = attention_graph_stats(cap.attention[layer], causal, config.density_threshold,
                                          config.relative_threshold)
            stats.update(query_rows_stats(cap.attention[layer], causal, question_rows))
            density[q, layer] = [float(np.mean(stats[m])) for m in DENSITY_MEASURES]
        mask = question_rows if config.scope == "question" else np.ones(cap.n_tokens, bool)
        for layer in range(lm.n_layers):
            points[layer].append(cap.mlp_inputs[layer][mask].astype(np.float16))
        generated = cap.generated or ""
        correct[q] = check_answer(generated, item.answer)
        rows.append({"question_id": item.id, "difficulty": item.difficulty, "n_tokens": cap.n_tokens,
                     "n_context_tokens": len(lm.tokenizer(prefix, add_special_tokens=False)["input_ids"])
                     if prefix else 0, "n_question_tokens": int(mask.sum()), "answer": item.answer,
                     "generated": generated, "parsed": parse_integer(generated), "correct": bool(correct[q])})
    return _Captured(points, density, correct, rows)


def _cloud(cap: _Captured, layer: int) -> tuple[np.ndarray, np.ndarray]:
    chunks = cap.points[layer]
    owner = np.concatenate([np.full(len(c), q) for q, c in enumerate(chunks)])
    return distinct_points(np.concatenate(chunks).astype(np.float64), owner)


def _run_model(lm: LoadedModel, config, items) -> dict[str, pd.DataFrame]:
    conds = task_conditions(config.shots, config.controls)
    modules = mlp_modules(lm.model, lm.n_layers, config.mlp_path)
    width = mlp_width(modules[0], lm.hidden_size, lm.model.config)
    gates = [_gate(m, lm.hidden_size) for m in modules]
    L, est = lm.n_layers, list(config.estimators)
    captured = {c: _capture_condition(lm, items, ctx, k, config, f"{lm.name} {c}") for c, ctx, k in conds}
    n_q = len(items)
    draws = bootstrap_draws(n_q, config.n_bootstrap, config.seed)
    clouds = {c: [_cloud(captured[c], layer) for layer in range(L)] for c, _, _ in conds}
    t = max(1, min(config.tokens_per_question, config.max_points // n_q))
    m = min(int(np.minimum(np.bincount(o, minlength=n_q), t).sum()) for per in clouds.values() for _, o in per)
    if m < 20:
        raise BrainlikeError(f"{lm.name}: only {m} distinct question-token vectors in some condition/layer; "
                             "use more questions (n_questions)")
    late = [layer for layer in range(L) if (layer + 1) / L > config.late_from]

    meta = {c: (ctx, k) for c, ctx, k in conds}
    layer_rows, pattern_rows, acc_rows = [], [], []
    ids: dict[str, np.ndarray] = {}  # condition -> (1 + B, L, n_est)
    for c, ctx, k in tqdm(conds, desc=f"{lm.name} ID", disable=not config.progress, leave=False):
        cube = np.empty((1 + len(draws), L, len(est)))
        for layer in range(L):
            X, owner = clouds[c][layer]
            D = distance_matrix(X)
            n_used = int(np.minimum(np.bincount(owner, minlength=n_q), t).sum())
            cube[:, layer] = resampled_ids(D, owner, draws, t, est, config.mle_neighbors, config.seed + layer)
            base = {"model": lm.name, "condition": c, "context": ctx, "n_shots": k, "layer": layer + 1,
                    "relative_layer": (layer + 1) / L}
            for j, e in enumerate(est):
                lo, hi = _ci(cube[:, layer, j])
                layer_rows.append({**base, "measure": f"id_{e}", "estimate": cube[0, layer, j], "ci_low": lo,
                                   "ci_high": hi, "n_points": n_used})
            dens = captured[c].density[:, layer]
            for j, meas in enumerate(DENSITY_MEASURES):
                lo, hi = _ci(np.r_[dens[:, j].mean(), dens[draws, j].mean(axis=1)])
                layer_rows.append({**base, "measure": meas, "estimate": float(dens[:, j].mean()), "ci_low": lo,
                                   "ci_high": hi, "n_points": n_q})
            w, b = gates[layer]
            id_twonn = cube[0, layer, est.index("twonn")] if "twonn" in est else cube[0, layer, 0]
            pattern_rows.append({**base, "n_points": len(X), "n_patterns": count_patterns(X, w, b), "width": width,
                                 "intrinsic_dimension": id_twonn,
                                 "dim_used": min(integer_dimension(id_twonn, config.region_rounding), width),
                                 "log10_regions_bound": log10_linear_region_bound(width, id_twonn,
                                                                                  config.region_rounding)})
        ids[c] = cube
        for row in captured[c].rows:
            acc_rows.append({"model": lm.name, "condition": c, "context": ctx, "n_shots": k, **row})

    late_id = {c: ids[c][:, late].mean(axis=1) for c in ids}  # (1 + B, n_est)
    acc = {c: np.concatenate([[captured[c].correct.mean()], captured[c].correct[draws].mean(axis=1)])
           for c in ids}
    chain = []
    deltas: dict[tuple[str, str], tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    contrasts = [(f"examples-{k}", f"{ctl}-{k}", "length-matched") for k in config.shots if k > 0
                 for ctl in config.controls]
    if 0 in config.shots:
        contrasts += [(f"examples-{k}", "examples-0", "not length-matched") for k in config.shots if k > 0]
    for a, b, kind in contrasts:
        base = {"model": lm.name, "condition": a, "control": b, "contrast": kind, "n_shots": meta[a][1]}
        null = _late_null(captured[a], captured[b], late, t, est, config)
        for j, e in enumerate(est):
            delta = late_id[a][:, j] - late_id[b][:, j]
            p = (1 + np.sum(np.abs(null[:, j]) >= abs(delta[0]))) / (1 + len(null))
            chain.append({**base, "effect": f"delta_late_id_{e}", "estimate": delta[0], **_ci_dict(delta),
                          "p_value": float(p), "null": f"question-wise swap of the two conditions ({len(null)})"})
        delta = acc[a] - acc[b]
        chain.append({**base, "effect": "delta_accuracy", "estimate": delta[0], **_ci_dict(delta),
                      "p_value": _mcnemar(captured[a].correct, captured[b].correct), "null": "exact McNemar"})
        if kind == "length-matched":  # a thresholded or key-count-normalised density is comparable only here
            delta, p = _density_contrast(captured[a].density, captured[b].density, late, draws, config.seed)
            chain.append({**base, "effect": f"delta_late_{DENSITY_TEST_MEASURE}", "estimate": delta[0],
                          **_ci_dict(delta), "p_value": p,
                          "null": "question-wise sign flip of the paired differences (2000)"})
            deltas[(a, b)] = (delta, {e: late_id[a][:, j] - late_id[b][:, j] for j, e in enumerate(est)})
    names = list(ids)
    A = np.stack([acc[c] for c in names], axis=1)  # (1 + B, n_cond)
    rng = np.random.default_rng([config.seed, 17])
    for j, e in enumerate(est):
        Z = np.stack([late_id[c][:, j] for c in names], axis=1)
        chain.append({"model": lm.name, "condition": "all", "control": "", "contrast": f"{len(names)} conditions",
                      "n_shots": -1, "effect": f"corr_late_id_{e}_accuracy",
                      **_correlation_with_null(Z, A, rng, permute_first=False),
                      "null": "accuracies permuted across conditions (2000)"})
    chain += _density_id_link(deltas, est, lm.name, config.seed)
    model_row = {"model": lm.name, "kind": lm.kind, "n_layers": L, "n_heads": attention_heads(lm.model),
                 "hidden_size": lm.hidden_size, "mlp_width": width, "fingerprint": lm.fingerprint,
                 "n_points_per_estimate": m, "tokens_per_question": t,
                 "late_layers": f"{late[0] + 1}-{late[-1] + 1}", "included": True,
                 "note": ""}
    return {"layers": pd.DataFrame(layer_rows), "activation_patterns": pd.DataFrame(pattern_rows),
            "accuracy": pd.DataFrame(acc_rows), "chain": pd.DataFrame(chain), "models": pd.DataFrame([model_row])}


def _density_contrast(dens_a: np.ndarray, dens_b: np.ndarray, late: list[int], draws: np.ndarray,
                      seed: int) -> tuple[np.ndarray, float]:
    """Late-layer difference of :data:`DENSITY_TEST_MEASURE` between two conditions of the same questions.

    ``dens_*`` are ``(n_questions, n_layers, n_measures)``. Returns ``[full, draw 1, ...]`` differences of the
    means (the half-sampling draws of the ID) and the two-sided p-value of a question-wise sign flip of the
    paired differences (2000 flips).
    """
    j = DENSITY_MEASURES.index(DENSITY_TEST_MEASURE)
    d = dens_a[:, late, j].mean(axis=1) - dens_b[:, late, j].mean(axis=1)  # (n_questions,)
    values = np.r_[d.mean(), d[draws].mean(axis=1)]
    signs = np.random.default_rng([seed, 19]).choice([-1.0, 1.0], size=(2000, len(d)))
    null = (signs * d).mean(axis=1)
    return values, float((1 + np.sum(np.abs(null) >= abs(d.mean()))) / (1 + len(null)))


def _density_id_link(deltas: dict, est: list[str], model: str, seed: int) -> list[dict]:
    """Across the length-matched contrasts: correlation of the density difference with the ID difference.

    CI from the shared half-sampling draws (both differences recomputed per draw), null: the density
    differences permuted across contrasts (2000). Needs at least 3 contrasts.
    """
    if len(deltas) < 3:
        return []
    keys = list(deltas)
    dens = np.stack([deltas[k][0] for k in keys], axis=1)  # (1 + B, n_contrasts)
    rng = np.random.default_rng([seed, 23])
    rows = []
    for e in est:
        ids = np.stack([deltas[k][1][e] for k in keys], axis=1)
        rows.append({"model": model, "condition": "length-matched contrasts", "control": "",
                     "contrast": f"{len(keys)} length-matched contrasts", "n_shots": -1,
                     "effect": f"corr_delta_{DENSITY_TEST_MEASURE}_delta_late_id_{e}",
                     **_correlation_with_null(dens, ids, rng, permute_first=True),
                     "null": "density differences permuted across contrasts (2000)"})
    return rows


def attention_verdict(chain: pd.DataFrame, model: str) -> str:
    """One sentence on the attention claim: does context make the question tokens' attention denser (length-free).

    Tested at the largest shot count against every length-matched control (same prompt length, so the
    key counts of the question tokens' queries are the same): the late-layer difference of
    :data:`DENSITY_TEST_MEASURE` must have a 95% CI above zero and a sign-flip p < 0.05; and across the
    length-matched contrasts, its correlation with the late-layer ID difference must have a CI above zero
    (both estimators) for "denser attention goes with higher ID".
    """
    c = chain[chain["model"] == model]
    dens = c[c["effect"] == f"delta_late_{DENSITY_TEST_MEASURE}"]
    if dens.empty:
        return f"{model}: no length-matched control was run, so the attention claim was not tested."
    k = int(dens["n_shots"].max())
    top = dens[dens["n_shots"] == k]
    denser = bool(((top["ci_low"] > 0) & (top["p_value"] < 0.05)).all())
    sparser = bool(((top["ci_high"] < 0) & (top["p_value"] < 0.05)).all())
    link = c[c["effect"].str.startswith(f"corr_delta_{DENSITY_TEST_MEASURE}")]
    linked = bool(len(link)) and bool((link["ci_low"] > 0).all())
    def word(r) -> str:
        if r.ci_low > 0 and r.p_value < 0.05:
            return "denser"
        return "sparser" if r.ci_high < 0 and r.p_value < 0.05 else "not different"

    parts = ", ".join(f"{r.control}: {word(r)} ({r.estimate:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}], "
                      f"p = {r.p_value:.3f})" for r in top.itertuples())
    first = ("denser than" if denser else "sparser than" if sparser else "not denser than")
    corr = "; ".join(f"{r.effect.rsplit('_', 1)[-1]} r = {r.estimate:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
                     for r in link.itertuples()) or "too few contrasts"
    return (f"{model}: after {k} examples the question tokens' late-layer attention is {first} after every "
            f"length-matched control ({DENSITY_TEST_MEASURE} vs {parts}); density difference vs ID difference "
            f"across length-matched contrasts: {corr} -> 'denser attention, higher ID' "
            + ("holds here." if denser and linked else "does not hold here."))


def _ci_dict(values: np.ndarray) -> dict[str, float]:
    lo, hi = _ci(values)  # values[0] is the full-sample estimate
    return {"ci_low": lo, "ci_high": hi}


def _correlation_with_null(X: np.ndarray, Y: np.ndarray, rng: np.random.Generator,
                           permute_first: bool) -> dict[str, float]:
    """Pearson r across conditions (or contrasts), with its half-sampling CI and a permutation p.

    ``X``, ``Y`` are ``(1 + n_draws, n)``: row 0 the full sample, the others the shared half-sampling draws.
    The null permutes row 0 of ``X`` (``permute_first``) or of ``Y`` 2000 times (two-sided). Returns
    ``estimate`` (r of row 0), ``ci_low``, ``ci_high`` (clipped to [-1, 1]) and ``p_value`` (NaN when r is).
    """
    r = np.array([_pearson(X[b], Y[b]) for b in range(len(X))])
    if permute_first:
        perm = np.array([_pearson(rng.permutation(X[0]), Y[0]) for _ in range(2000)])
    else:
        perm = np.array([_pearson(X[0], rng.permutation(Y[0])) for _ in range(2000)])
    p = (1 + np.sum(np.abs(perm) >= abs(r[0]))) / (1 + len(perm)) if np.isfinite(r[0]) else float("nan")
    return {"estimate": r[0], **{k: float(np.clip(v, -1, 1)) for k, v in _ci_dict(r).items()}, "p_value": float(p)}


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    from statsmodels.stats.contingency_tables import mcnemar

    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    return float(mcnemar(table, exact=True).pvalue)


def _late_null(cap_a: _Captured, cap_b: _Captured, late: list[int], t: int, est: list[str], config) -> np.ndarray:
    """``(n_permutations, n_est)`` null of the late-layer mean ID difference (same swaps in every layer)."""
    n_perm = max(config.n_bootstrap // 2, 20)
    total = np.zeros((n_perm, len(est)))
    for layer in late:
        Xa, oa = _cloud(cap_a, layer)
        Xb, ob = _cloud(cap_b, layer)
        X, owner = np.concatenate([Xa, Xb]), np.concatenate([oa, ob])
        is_a = np.r_[np.ones(len(Xa), bool), np.zeros(len(Xb), bool)]
        total += swap_null(distance_matrix(X), owner, is_a, t, est, n_perm, config.mle_neighbors, config.seed)
    return total / len(late)


def accuracy_table(accuracy: pd.DataFrame, items) -> pd.DataFrame:
    """Accuracy per (model, condition, difficulty) and over all difficulties (``difficulty = -1``).

    ``n, n_correct, accuracy, ci_low, ci_high`` (Wilson 95%), ``chance`` (:func:`chance_rate`), ``above_chance`` (Wilson
    lower bound > chance) and ``n_context_tokens`` (mean).
    """
    from statsmodels.stats.proportion import proportion_confint

    if accuracy.empty:
        return pd.DataFrame(columns=["model", "condition", "difficulty", "n", "n_correct", "accuracy"])
    chance = {d: chance_rate([it for it in items if it.difficulty == d]) for d in {it.difficulty for it in items}}
    chance[-1] = chance_rate(items)
    rows = []
    for (model, cond), g in accuracy.groupby(["model", "condition"], sort=False):
        for d, part in [(-1, g), *sorted(g.groupby("difficulty"))]:
            n, s = len(part), int(part["correct"].sum())
            lo, hi = proportion_confint(s, n, alpha=0.05, method="wilson")
            rows.append({"model": model, "condition": cond, "context": part["context"].iloc[0],
                         "n_shots": int(part["n_shots"].iloc[0]), "difficulty": int(d), "n": n, "n_correct": s,
                         "accuracy": s / n, "ci_low": float(lo), "ci_high": float(hi), "chance": chance[int(d)],
                         "above_chance": bool(lo > chance[int(d)]),
                         "n_context_tokens": float(part["n_context_tokens"].mean())})
    return pd.DataFrame(rows)


def verdict(chain: pd.DataFrame, model: str) -> str:
    """One sentence: whether "more context → higher late-layer ID → higher accuracy" holds for ``model``.

    Tested on the largest shot count against every length-matched control: the late-layer ID difference
    (both estimators) and the accuracy difference must have 95% CIs above zero, and the correlation of
    late-layer ID with accuracy across conditions must have a CI above zero (both estimators).
    """
    c = chain[chain["model"] == model]
    matched = c[c["contrast"] == "length-matched"]
    if matched.empty:
        return f"{model}: no length-matched control was run, so the prediction was not tested."
    k = int(matched["n_shots"].max())
    top = matched[matched["n_shots"] == k]
    id_up = top[top["effect"].str.startswith("delta_late_id")]
    acc_up = top[top["effect"] == "delta_accuracy"]
    corr = c[c["effect"].str.startswith("corr_")]
    parts = {"late-layer ID rises with context": bool((id_up["ci_low"] > 0).all()),
             "accuracy rises with context": bool((acc_up["ci_low"] > 0).all()),
             "late-layer ID tracks accuracy across conditions": bool((corr["ci_low"] > 0).all())}
    held = [p for p, ok in parts.items() if ok]
    failed = [p for p, ok in parts.items() if not ok]
    if not failed:
        return (f"{model}: the prediction holds here ({k} examples vs length-matched controls): "
                + "; ".join(held) + " (all 95% CIs above zero).")
    return (f"{model}: the prediction does not hold here ({k} examples vs length-matched controls): "
            f"not supported: {'; '.join(failed)}" + (f"; supported: {'; '.join(held)}." if held else "."))


@dataclass
class TaskGeometryResult:
    """Tables of the arithmetic-task geometry experiment (tidy, one row per observation).

    Attributes
    ----------
    layers : pd.DataFrame
        per (model, condition, layer, measure): ``estimate, ci_low, ci_high`` (bootstrap 95% over
        questions), ``n_points``; measures ``id_twonn``, ``id_mle`` (dimensions), ``density``,
        ``relative_density``, ``effective_density`` (shares of allowed attention entries).
    activation_patterns : pd.DataFrame
        per (model, condition, layer): ``n_points`` (distinct question-token MLP
        inputs), ``n_patterns`` (distinct sign patterns of the MLP's first projection on them),
        ``width``, ``intrinsic_dimension`` (TwoNN), ``dim_used``, ``log10_regions_bound``.
    accuracy : pd.DataFrame
        per (model, condition, question): ``difficulty, n_tokens, n_context_tokens, answer,
        generated, parsed, correct``.
    accuracy_summary : pd.DataFrame
        see :func:`accuracy_table`.
    chain : pd.DataFrame
        per (model, contrast, effect): ``estimate, ci_low, ci_high, p_value, null``.
    verdicts : pd.DataFrame
        per model: ``verdict`` (one sentence on the chain) and ``attention_verdict`` (one on the length-free
        attention test, :func:`attention_verdict`).
    models : pd.DataFrame
        per model: architecture, ``n_points_per_estimate``, ``late_layers``, ``included``, ``note``.
    config, notes : dict and list[str]
        settings and remarks (encoders excluded).
    """

    layers: pd.DataFrame
    activation_patterns: pd.DataFrame
    accuracy: pd.DataFrame
    accuracy_summary: pd.DataFrame
    chain: pd.DataFrame
    verdicts: pd.DataFrame
    models: pd.DataFrame
    config: dict
    notes: list[str] = field(default_factory=list)

    TABLES = ("layers", "activation_patterns", "accuracy", "accuracy_summary", "chain", "verdicts", "models")

    def figures(self) -> dict:
        """``{"task_intrinsic_dimension": Figure}``: TwoNN ID per layer with bootstrap CIs, per condition."""
        import matplotlib.pyplot as plt

        figs = {}
        ids = self.layers[self.layers["measure"] == "id_twonn"]
        if ids.empty:
            return figs
        models = list(dict.fromkeys(ids["model"]))
        fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
        for ax, model in zip(axes[0], models):
            for cond, g in ids[ids["model"] == model].groupby("condition", sort=False):
                style = "-" if g["context"].iloc[0] == "examples" else ":"
                line, = ax.plot(g["layer"], g["estimate"], style, label=cond)
                ax.fill_between(g["layer"], g["ci_low"], g["ci_high"], color=line.get_color(), alpha=0.12)
            ax.set(title=model, xlabel="layer", ylabel="TwoNN ID of question tokens")
            ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        figs["task_intrinsic_dimension"] = fig
        return figs

    def save(self, folder: str | Path) -> Path:
        """Write every table as ``<name>.parquet`` into ``folder``."""
        from brainlike.fileio import atomic_write

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.TABLES:
            table = getattr(self, name)
            atomic_write(folder / f"{name}.parquet", lambda tmp, t=table: t.to_parquet(tmp, index=False))
        return folder


def run_arithmetic_geometry(config, models: dict[str, LoadedModel] | None = None) -> TaskGeometryResult:
    """The arithmetic-task experiment for every model of ``config`` (a ``GeometryConfig`` with ``task="arithmetic"``).

    See the module doc.
    """
    items = generate_items(config.n_questions or 100, config.difficulties, config.seed, max(config.shots))
    notes, parts = [], {}
    for name in config.models:
        lm = (models or {}).get(name) or load_model(name, dtype=config.dtype, device=config.device,
                                                    attn_implementation="eager")
        if lm.kind != "causal":
            note = f"{lm.name} is an encoder: it cannot generate answers, so it is excluded from the task"
            notes.append(note)
            parts.setdefault("models", []).append(pd.DataFrame([{"model": lm.name, "kind": lm.kind,
                                                                   "n_layers": lm.n_layers, "included": False,
                                                                   "note": note}]))
            continue
        for key, table in _run_model(lm, config, items).items():
            parts.setdefault(key, []).append(table)
    tables = {k: pd.concat([t for t in v if not t.empty] or [pd.DataFrame()], ignore_index=True)
              for k, v in parts.items()}
    for key in ("layers", "activation_patterns", "accuracy", "chain"):
        tables.setdefault(key, pd.DataFrame())
    if "parsed" in tables["accuracy"]:
        tables["accuracy"]["parsed"] = tables["accuracy"]["parsed"].astype("Int64")
    summary = accuracy_table(tables["accuracy"], items)
    included = [m for m in tables["models"]["model"]] if "models" in tables else []
    verdicts = pd.DataFrame([{"model": m, "verdict": verdict(tables["chain"], m),
                              "attention_verdict": attention_verdict(tables["chain"], m)} for m in included
                             if not tables["chain"].empty and m in set(tables["chain"]["model"])],
                            columns=["model", "verdict", "attention_verdict"])
    return TaskGeometryResult(layers=tables["layers"], activation_patterns=tables["activation_patterns"],
                              accuracy=tables["accuracy"], accuracy_summary=summary, chain=tables["chain"],
                              verdicts=verdicts, models=tables["models"],
                              config=config.model_dump(mode="json"), notes=notes)
