"""`brainlike run SPEC.yaml`: the layer-wise alignment sweep over a model zoo (Mischler et al. 2024).

models × subjects × layers are scored with cross-validated ridge; every table goes to a
:class:`~brainlike.store.ResultsStore` under ``<output>/results``; finished (model, subject) pieces are
skipped when the run is started again, and features come from the feature cache.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from brainlike.analyses import alignment as al
from brainlike.errors import BrainlikeError
from brainlike.locking import locks_output
from brainlike.models import ExtractionOptions, Features, load_model
from brainlike.neural import word_locked_responses
from brainlike.neural.sources import SubjectData, hierarchy_positions
from brainlike.spec import ExperimentSpec
from brainlike.stimulus import Stimulus
from brainlike.store import ResultsStore

#: relative depths of the hierarchy levels of the simulated brain (see :func:`simulate_zoo_subject`)
LEVEL_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class RunResult:
    store: ResultsStore
    report: Path | None
    seconds: float
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def load_stimulus(spec: ExperimentSpec) -> Stimulus:
    from brainlike.cli import read_stimulus
    from brainlike.data import default_story

    src = spec.stimulus.source
    if src == "builtin:aesop":
        stim = Stimulus.from_text(default_story(), words_per_second=spec.stimulus.words_per_second, jitter=0.2,
                                  seed=spec.seed, name="aesop")
    elif src.startswith("builtin:"):
        raise BrainlikeError(f"unknown built-in stimulus {src!r}; available: builtin:aesop")
    else:
        path = Path(src)
        stim = read_stimulus(path) if path.suffix.lower() != ".txt" else Stimulus.from_text(
            path.read_text(encoding="utf-8"), words_per_second=spec.stimulus.words_per_second, name=path.stem)
    if spec.stimulus.n_words:
        stim = stim.subset(0, spec.stimulus.n_words)
    return stim


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def zoo_levels(features: dict[str, Features], planted: dict[str, float]) -> np.ndarray:
    """Pseudo-features of a simulated brain whose representations mix the models' layers.

    Level ``j`` (relative depth ``LEVEL_DEPTHS[j]``) concatenates, for every model ``m``, its z-scored layer
    at that relative depth scaled by ``sqrt(w_m / p_m)``: a random projection of level ``j`` then draws
    variance ``∝ w_m`` from model ``m``. Models with larger planted weight are therefore more brain-like.

    Returns:
        ``(len(LEVEL_DEPTHS), n_words, Σ p_m)`` float32.
    """
    blocks = []
    for name, feats in features.items():
        w = float(planted.get(name, 0.0))
        if w <= 0:
            continue
        layers = [int(round(d * (feats.n_layers - 1))) for d in LEVEL_DEPTHS]
        scale = np.sqrt(w / feats.hidden_size)
        blocks.append(np.stack([_zscore(feats.layers[k].astype(np.float64)) * scale for k in layers]))
    if not blocks:
        raise BrainlikeError("dataset.planted gives no model a positive weight")
    return np.concatenate(blocks, axis=2).astype(np.float32)


def simulated_subjects(spec: ExperimentSpec, stim: Stimulus, features: dict[str, Features]) -> list[SubjectData]:
    """Simulated ECoG subjects (with their ground truth tables) for a zoo spec."""
    from brainlike.neural.simulate import default_regions, simulate_ecog

    planted = spec.dataset.planted or {k: 1.0 for k in features}
    levels = zoo_levels(features, planted)
    n_sub = spec.dataset.subjects if isinstance(spec.dataset.subjects, int) else len(spec.dataset.subjects)
    labels = spec.dataset.subjects if isinstance(spec.dataset.subjects, list) else [f"sim-{i + 1:02d}" for i in range(n_sub)]
    out = []
    for i, label in enumerate(labels):
        regions = default_regions(levels.shape[0], n_channels=spec.dataset.channels_per_region, snr=spec.dataset.snr)
        sim = simulate_ecog(stim, levels, regions=regions, seed=spec.seed + 1000 * i, subject=label)
        ds = sim.dataset
        ds.hierarchy = hierarchy_positions(ds, spec.dataset.hierarchy)
        truth = sim.truth[["channel", "best_layer", "is_noise"]].rename(columns={"best_layer": "planted_level"})
        out.append(SubjectData(ds, stim, truth))
    return out


def recorded_subjects(spec: ExperimentSpec) -> list[SubjectData]:
    """The recorded subjects of a spec (BIDS iEEG), or [] for a simulated dataset."""
    d = spec.dataset
    if d.kind != "bids-ieeg":
        return []
    from brainlike.neural.sources import load_bids_ieeg_subjects

    assert d.path is not None and isinstance(d.subjects, list)  # checked by the spec
    return load_bids_ieeg_subjects(d.path, d.subjects, task=d.task, hierarchy=d.hierarchy, stimulus=d.stimulus,
                                   region_column=d.region_column)


@locks_output  # one run at a time per output folder; a second one names the holder ($BRAINLIKE_LOCK_TIMEOUT)
def run_experiment(spec: ExperimentSpec, console: Console | None = None, progress: bool = True) -> RunResult:
    """Run a spec end to end; returns the store (and report path).

    Feature extraction (one task per model) and encoding fits (one task per model × subject × layer
    chunk) run on the spec's executor (``local`` or ``ray``); the numbers do not depend on it. Finished
    pieces are skipped when the run is started again, including the chunks of a half-finished
    (model, subject) pair (checksummed, under ``<output>/staging``).
    """
    from brainlike.cache import default_cache_dir
    from brainlike.execution import (ChunkStaging, ExtractTask, FitTask, Resources, extract_task, features_digest,
                                     layer_chunks, make_executor, open_features, responses_digest, run_fits)

    console = console or Console(stderr=True)
    t0 = time.time()
    out = Path(spec.output)
    store = ResultsStore(out / "results")
    recorded = recorded_subjects(spec)  # recordings bring their own words; features are extracted on them
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
        ext_tasks = {m.key: ExtractTask(m.name, m.key, stim, opts, cache, m.revision, progress=local_bars)
                     for m in spec.models}
        ext = {k: ex.submit(extract_task, t, resources=extract_res) for k, t in ext_tasks.items()}
        features: dict[str, Features] = {}
        for key, fut in ext.items():  # the driver needs them all for the simulated brain
            console.print(f"features: {key}")
            features[key] = open_features(fut.result())
        subjects = recorded or simulated_subjects(spec, stim, features)
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
        alphas = None if enc.alphas is None else tuple(float(a) for a in enc.alphas)

        def plan(key: str, chunks: list[tuple[int, ...]], fdigest: str, n_perm: int, tag: tuple = ()) -> list[FitTask]:
            return [FitTask(key, ds.subject, layers, tuple(ds.channels), tuple(ds.regions or ["all"] * ds.n_channels),
                            enc.n_splits, enc.inner_splits, alphas, enc.backend, n_perm, spec.seed, fdigest,
                            digests[ds.subject], tag)
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
                f = features[m.key]
                for n_ctx in spec.analyses.context.windows:
                    tag = (("context", n_ctx),)
                    if all(store.has("context_scores", model=m.key, subject=ds.subject, context=n_ctx) for ds in kept):
                        continue
                    et = ExtractTask(m.name, m.key, stim, ExtractionOptions(**{**opts.__dict__, "context_tokens": n_ctx}),
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
    report = None
    if spec.report:
        from brainlike.report.alignment_report import alignment_report

        report = alignment_report(spec, tables, out / "report.html")
        console.print(f"report: {report}")
    return RunResult(store, report, time.time() - t0, tables)


def analyse(spec: ExperimentSpec, store: ResultsStore, channels: pd.DataFrame, console: Console,
            progress: bool = True) -> dict[str, pd.DataFrame]:
    """Brain scores, best layers, hierarchy alignment, capability and context tables (all stored)."""
    from brainlike.analyses.capability import bits_per_byte, read_corpus

    scores = store.read("scores")
    hier_col = "hierarchy"  # positions computed from spec.dataset.hierarchy (brainlike.neural.sources)
    scores = scores.merge(channels[["subject", "channel", hier_col]], on=["subject", "channel"], how="left")
    sig = al.significant_channels(scores, alpha=spec.encoding.significance)
    summary, curve = al.brain_scores(scores, sig)
    best = al.best_relative_layers(scores).merge(sig, on=al.CHANNEL_KEYS)
    hier = al.hierarchy_alignment(best[best["significant"]], position=hier_col,
                                  n_boot=spec.analyses.hierarchy_bootstrap, seed=spec.seed)
    per_model = summary.merge(hier[["model", "rho", "ci_low", "ci_high"]], on="model", how="left")
    tables = {"significance": sig, "brain_scores": per_model, "layer_curve": curve, "best_layers": best,
              "hierarchy": hier}
    cap_rows = []
    cap_spec = spec.analyses.capability
    for m in spec.models:
        if m.capability is not None:
            cap_rows.append({"model": m.key, "capability": m.capability, "bits_per_byte": np.nan, "source": "spec"})
        elif cap_spec is not None and cap_spec.corpus:
            if store.has("capability_cache", model=m.key):
                cap_rows.append(store.read("capability_cache", where={"model": m.key}).iloc[0].to_dict())
                continue
            lm = load_model(m.name, dtype=spec.features.dtype)
            if lm.kind != "causal":
                console.print(f"[yellow]{m.key}: not a causal LM; no bits-per-byte capability (give `capability:` "
                              "in the spec)[/]")
                continue
            bpb = bits_per_byte(lm, read_corpus(cap_spec.corpus, cap_spec.max_bytes), window=cap_spec.window,
                                progress=progress)["bits_per_byte"]
            row = {"model": m.key, "capability": -bpb, "bits_per_byte": bpb, "source": cap_spec.corpus}
            store.write("capability_cache", pd.DataFrame([row]), model=m.key)
            cap_rows.append(row)
    if cap_rows:
        cap = pd.DataFrame(cap_rows)
        tables["capability"] = cap
        tables["capability_correlation"] = al.capability_correlation(per_model, cap, seed=spec.seed)
    if "context_scores" in store.tables():
        tables["context"] = al.context_curves(store.read("context_scores"))
    for name, df in tables.items():
        store.write(name, df)
    return tables
