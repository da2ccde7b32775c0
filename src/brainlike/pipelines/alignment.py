"""The ``alignment`` analysis: the layer-wise alignment sweep over a model zoo (Mischler et al. 2024).

models × subjects × layers are scored with cross-validated ridge; every table goes to the run's
:class:`~brainlike.store.ResultsStore` under ``<output>/results``; finished (model, subject) pieces are
skipped when the run is started again, and features come from the feature cache. The subjects come from
the spec's registered dataset (:mod:`brainlike.datasets`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from brainlike.analyses import alignment as al
from brainlike.config import resolve_stimulus
from brainlike.datasets import DatasetContext, dataset_plugin
from brainlike.locking import locks_output
from brainlike.models import ExtractionOptions, Features, load_model
from brainlike.neural import word_locked_responses
from brainlike.pipelines import AnalysisOutput, RunContext
from brainlike.spec import ExperimentSpec
from brainlike.stimulus import Stimulus
from brainlike.store import ResultsStore


@dataclass
class RunResult:
    """What a run stored, its report and how long it took."""

    store: ResultsStore
    report: Path | None
    seconds: float
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def load_stimulus(spec: ExperimentSpec) -> Stimulus:
    """The spec's own story (:func:`brainlike.config.resolve_stimulus`, seeded by the spec's seed)."""
    return resolve_stimulus(spec.stimulus, seed=spec.seed)


@locks_output  # one run at a time per output folder; a second one names the holder ($BRAINLIKE_LOCK_TIMEOUT)
def run_experiment(spec: ExperimentSpec, console: Console | None = None, progress: bool = True) -> RunResult:
    """Run a spec end to end; returns the store (and report path).

    Feature extraction (one task per model) and encoding fits (one task per model × subject × layer
    chunk) run on the spec's executor (``local`` or ``ray``); the numbers do not depend on it. Finished
    pieces are skipped when the run is started again, including the chunks of a half-finished
    (model, subject) pair (checksummed, under ``<output>/staging``).
    """
    from brainlike.cache import default_cache_dir
    from brainlike.execution import (
        ChunkStaging,
        ExtractTask,
        FitTask,
        Resources,
        extract_task,
        features_digest,
        layer_chunks,
        make_executor,
        open_features,
        responses_digest,
        run_fits,
    )

    console = console or Console(stderr=True)
    t0 = time.time()
    out = Path(spec.output)
    store = ResultsStore(out / "results")
    cap = spec.analyses.capability
    if cap is not None:
        from brainlike.analyses.capability import read_corpus

        for corpus in cap.all_corpora:
            read_corpus(corpus, cap.max_bytes)  # pre-flight: a bad corpus fails before any model is loaded
        if cap.syntaxgym_suites:
            from brainlike.analyses.syntaxgym import load_suite

            for name in cap.syntaxgym_suites:
                load_suite(name)  # pre-flight: unknown suite names fail early too
    plugin = dataset_plugin(spec.dataset_kind)
    recorded = []  # recordings bring their own words; features are extracted on them
    if not plugin.needs_features:
        recorded = plugin.load(spec.dataset_config, DatasetContext(seed=spec.seed))
    if recorded and recorded[0].dataset.modality == "wordlevel":  # per-word tables: regressions on surprisal
        from brainlike.pipelines.alignment_wordlevel import run_wordlevel

        tables = run_wordlevel(spec, recorded, store, console, progress)
        tables.update(capability_tables(spec, store, tables["brain_scores"], console, progress))
        for name in ("capability", "capability_correlation"):
            if name in tables:
                store.write(name, tables[name])
        return _finish(spec, tables, out, store, console, t0)
    stim = recorded[0].stimulus if recorded else load_stimulus(spec)
    console.print(f"[bold]{spec.name}[/]: {len(spec.models)} models, stimulus {stim.name!r} ({len(stim)} words), "
                  f"executor {spec.executor}")
    opts = ExtractionOptions(pooling=spec.features.pooling, dtype=spec.features.dtype,
                             max_window=spec.features.max_window, batch_size=spec.features.batch_size)
    enc, rs = spec.encoding, spec.ray
    cache = str(default_cache_dir())
    staging = {t: ChunkStaging(out / "staging", table=t) for t in ("scores", "context_scores")}
    for st in staging.values():
        st.clean_tmp()
    store.clean_tmp()
    ex = make_executor(spec.executor, address=rs.address, num_cpus=rs.num_cpus, num_gpus=rs.num_gpus)
    extract_res = Resources(num_cpus=1, num_gpus=rs.gpus_per_extraction)
    fit_res = Resources(num_cpus=rs.cpus_per_fit)
    local_bars = progress and spec.executor == "local"
    with ex:
        ext_tasks = {m.key: ExtractTask(m.name, m.key, stim, opts, cache, m.revision, progress=local_bars,
                                        features=m.features)
                     for m in spec.models}
        ext = {k: ex.submit(extract_task, t, resources=extract_res) for k, t in ext_tasks.items()}
        features: dict[str, Features] = {}
        for key, fut in ext.items():  # the driver needs them all for the simulated brain
            console.print(f"features: {key}")
            features[key] = open_features(fut.result())
        subjects = recorded or plugin.load(spec.dataset_config, DatasetContext(stim, features, spec.seed))
        if subjects and subjects[0].dataset.modality == "fmri":
            from brainlike.pipelines.alignment_fmri import run_fmri

            if spec.analyses.shuffled_words:  # the shuffled-word baseline of every trained model
                from brainlike.pipelines.shuffled_words import shuffle_stimulus, shuffled_key, unshuffle_features

                shuf, perm = shuffle_stimulus(stim, spec.seed)
                for m in [m for m in spec.models if "@random" not in m.name]:
                    t = ExtractTask(m.name, shuffled_key(m.key), shuf, opts, cache, m.revision, progress=local_bars)
                    console.print(f"features: {t.key} (the story's words shuffled)")
                    f = open_features(ex.submit(extract_task, t, resources=extract_res).result())
                    features[t.key] = unshuffle_features(f, perm, stim, t.key)
            tables = run_fmri(spec, features, subjects, store, console, progress)
            tables.update(capability_tables(spec, store, tables["brain_scores"], console, progress))
            for name in ("capability", "syntaxgym", "capability_correlation"):
                if name in tables:
                    store.write(name, tables[name])
            return _finish(spec, tables, out, store, console, t0)
        channel_rows, responses, digests, kept = [], {}, {}, []
        for sub in subjects:
            ds, dropped = sub.dataset.drop_bad_channels()
            if dropped:
                console.print(f"[yellow]{ds.subject}: excluded {len(dropped)} NaN/flat channels: {dropped[:8]}[/]")
            Y = word_locked_responses(ds, sub.stimulus, window=tuple(enc.window))
            ct = ds.channel_table().assign(subject=ds.subject)
            channel_rows.append(ct if sub.truth is None else ct.merge(sub.truth, on="channel", how="left"))
            responses[ds.subject] = ex.put(np.ascontiguousarray(Y, dtype=np.float32))
            digests[ds.subject] = responses_digest(Y)
            kept.append(ds)

        def plan(key: str, chunks: list[tuple[int, ...]], fdigest: str, n_perm: int, tag: tuple = ()) -> list[FitTask]:
            options = enc.options(spec.seed, n_permutations=n_perm)
            return [FitTask(key, ds.subject, layers, tuple(ds.channels), tuple(ds.regions or ["all"] * ds.n_channels),
                            options, fdigest, digests[ds.subject], tag)
                    for ds in kept for layers in chunks]

        tasks = [t for key, f in features.items()
                 for t in plan(key, layer_chunks(f.n_layers, rs.layer_chunk), features_digest(ext_tasks[key]),
                               enc.n_permutations)]
        n_ch = sum(ds.n_channels for ds in kept)
        console.print(f"encoding: {len(features)} models × {len(kept)} subjects ({n_ch} channels), "
                      f"{len(tasks)} layer-chunk fits")
        rep = run_fits(ex, store, staging["scores"], tasks, {(k, ()): fut for k, fut in ext.items()}, responses,
                       resources=fit_res, progress=progress)
        if rep.pieces_skipped or rep.chunks_reused:
            console.print(f"resumed: {rep.pieces_skipped} finished (model, subject) pieces and {rep.chunks_reused} "
                          f"finished chunks reused; {rep.chunks_fitted} chunks fitted now")
        if spec.analyses.context:
            # context-length curves: features with exactly N preceding tokens, all layers in one task
            ctx_tasks, ctx_feats = [], {}
            for m in spec.models:
                if m.features != "hidden":  # context lengths are a property of hidden states
                    continue
                f = features[m.key]
                for n_ctx in spec.analyses.context.windows:
                    tag = (("context", n_ctx),)
                    if all(store.has("context_scores", model=m.key, subject=ds.subject, context=n_ctx) for ds in kept):
                        continue
                    et = ExtractTask(m.name, m.key, stim,
                                     ExtractionOptions(**{**opts.__dict__, "context_tokens": n_ctx}),
                                     cache, m.revision, progress=local_bars)
                    ctx_feats[(m.key, tag)] = ex.submit(extract_task, et, resources=extract_res)
                    ctx_tasks += plan(m.key, [spec.analyses.context.layers(f.n_layers)], features_digest(et), 0, tag)
            if ctx_tasks:
                console.print(f"context: {len(ctx_feats)} (model, context) extractions, {len(ctx_tasks)} fits")
                run_fits(ex, store, staging["context_scores"], ctx_tasks, ctx_feats, responses, resources=fit_res,
                         progress=progress)
    channels = pd.concat(channel_rows, ignore_index=True)
    store.write("channels", channels)
    tables = analyse(spec, store, channels, console, progress)
    return _finish(spec, tables, out, store, console, t0)


def _finish(spec: ExperimentSpec, tables: dict[str, pd.DataFrame], out: Path, store: ResultsStore,
            console: Console, t0: float) -> RunResult:
    report = None
    if spec.report:
        from brainlike.report.alignment_report import alignment_report

        report = alignment_report(spec, tables, out / "report.html")
        console.print(f"report: {report}")
    return RunResult(store, report, time.time() - t0, tables)


class Alignment:
    """The ``alignment`` analysis plugin (registered in :data:`brainlike.registry.ANALYSES`)."""

    Config = ExperimentSpec
    title = "layer-wise brain alignment"

    def run(self, config: ExperimentSpec, context: RunContext) -> AnalysisOutput:
        """Run the analysis of ``config``."""
        from brainlike.report.alignment_report import alignment_sections

        spec = config.model_copy(update={"output": str(context.output), "report": False})
        res = run_experiment(spec, console=context.console, progress=context.progress)
        return AnalysisOutput(tables={}, sections=alignment_sections(res.tables),  # tables: stored by analyse()
                              subtitle=f"{len(config.models)} models, dataset {config.dataset_kind}")


ALIGNMENT = Alignment()


def capability_tables(spec: ExperimentSpec, store: ResultsStore, per_model: pd.DataFrame, console: Console,
                      progress: bool = True) -> dict[str, pd.DataFrame]:
    """The capability tables of a run (all stored by the caller).

    * ``capability``: ``model, measure, value, ci_low, ci_high, higher_is_better, source, note`` — the spec's
      ``capability:`` score (measure ``spec``), bits per byte / per word on every corpus, SyntaxGym accuracy;
      a measure a model cannot have is a row with NaN and the reason (e.g. an encoder without an MLM head);
    * ``syntaxgym``: per model and suite, accuracy with a Wilson CI (when SyntaxGym is asked for);
    * ``capability_correlation``: per capability measure (oriented so that higher = more capable) and
      brain metric, Pearson / Spearman across models with bootstrap CIs, the permutation p and the
      smallest p attainable with that many models.

    Each model's measures are cached in the store (``capability_measures``, ``syntaxgym_items``; keyed by
    model and the measure settings), so a rerun loads no model.
    """
    import hashlib
    import json

    from brainlike.analyses.capability import CAPABILITY_COLUMNS, capability_measures
    from brainlike.analyses.syntaxgym import suite_accuracy

    cap_spec = spec.analyses.capability
    rows, items = [], []
    settings = None if cap_spec is None else cap_spec.model_dump(exclude={"n_boot"})
    config = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    for m in spec.models:
        if m.capability is not None:
            rows.append(pd.DataFrame([dict(model=m.key, measure="spec", value=m.capability, ci_low=np.nan,
                                           ci_high=np.nan, higher_is_better=True, source="spec", note="")]))
        if cap_spec is None or not (cap_spec.all_corpora or cap_spec.syntaxgym_suites is not None):
            continue
        # the measures belong to the model, not to its feature kind: `X/surprisal` reuses X's if stored
        cached = next((k for k in dict.fromkeys([m.key] + ([m.name] if m.revision is None else []))
                       if store.has("capability_measures", model=k, config=config)), None)
        if cached is not None:
            rows.append(store.read("capability_measures", where={"model": cached, "config": config})
                        .assign(model=m.key))
            if store.has("syntaxgym_items", model=cached, config=config):
                items.append(store.read("syntaxgym_items", where={"model": cached, "config": config})
                             .assign(model=m.key))
            continue
        lm = load_model(m.name, dtype=spec.features.dtype)
        r, it = capability_measures(lm, cap_spec.all_corpora, max_bytes=cap_spec.max_bytes, window=cap_spec.window,
                                    syntaxgym=cap_spec.syntaxgym_suites,
                                    syntaxgym_max_items=cap_spec.syntaxgym_max_items, n_boot=cap_spec.n_boot,
                                    seed=spec.seed, progress=progress)
        del lm
        r["model"] = m.key
        for note in r.loc[r["value"].isna(), "note"].unique():
            console.print(f"[yellow]{m.key}: {note}[/]")
        if len(it):
            it["model"] = m.key
            store.write("syntaxgym_items", it, model=m.key, config=config)
        store.write("capability_measures", r, model=m.key, config=config)  # last: marks the model done
        rows.append(r)
        items.append(it)
    if not rows:
        return {}
    cap = pd.concat(rows, ignore_index=True)[CAPABILITY_COLUMNS]
    tables = {"capability": cap}
    items = [i for i in items if len(i)]
    if items:
        tables["syntaxgym"] = suite_accuracy(pd.concat(items, ignore_index=True)[
            ["model", "suite", "item", "n_predictions", "n_holding", "correct"]])
    metrics = tuple(c for c in ("brain_score", "brain_score_normalized", "rho") if c in per_model.columns)
    corr = []
    for measure, d in cap.dropna(subset=["value"]).groupby("measure", sort=False):
        sign = np.where(d["higher_is_better"].astype(bool), 1.0, -1.0)
        oriented = pd.DataFrame({"model": d["model"], "capability": d["value"].to_numpy(float) * sign})
        c = al.capability_correlation(per_model, oriented, metrics=metrics, n_boot=cap_spec.n_boot
                                      if cap_spec is not None else 2000, seed=spec.seed)
        c.insert(0, "capability_measure", measure if (sign > 0).all() else f"-{measure}")
        corr.append(c)
    if corr:
        tables["capability_correlation"] = pd.concat(corr, ignore_index=True)
    return tables


def analyse(spec: ExperimentSpec, store: ResultsStore, channels: pd.DataFrame, console: Console,
            progress: bool = True) -> dict[str, pd.DataFrame]:
    """Brain scores, best layers, hierarchy alignment, capability and context tables (all stored)."""
    scores = store.read("scores")
    hier_col = "hierarchy"  # positions computed from spec.dataset.hierarchy (brainlike.neural.sources)
    scores = scores.merge(channels[["subject", "channel", hier_col]], on=["subject", "channel"], how="left")
    sig = al.significant_channels(scores, alpha=spec.encoding.significance)
    summary, curve = al.brain_scores(scores, sig)
    best = al.best_relative_layers(scores).merge(sig, on=al.CHANNEL_KEYS)
    hier = al.hierarchy_alignment(best[best["significant"]], position=hier_col,
                                  n_boot=spec.analyses.hierarchy_bootstrap, seed=spec.seed)
    per_model = summary.merge(hier[["model", "rho", "ci_low", "ci_high"]], on="model", how="left")
    for m in summary.loc[summary["n_significant"] == 0, "model"]:
        console.print(f"[bold yellow]warning:[/] {m}: no channel is significant (q < {spec.encoding.significance}); "
                      "its brain score is the peak mean r over ALL channels and the hierarchy alignment is empty "
                      "— do not read it as brain-likeness")
    tables = {"significance": sig, "brain_scores": per_model, "layer_curve": curve, "best_layers": best,
              "hierarchy": hier}
    tables.update(capability_tables(spec, store, per_model, console, progress))
    if "context_scores" in store.tables():
        tables["context"] = al.context_curves(store.read("context_scores"))
    for name, df in tables.items():
        store.write(name, df)
    return tables
