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
from brainlike.analyses.layer_scores import score_layers
from brainlike.errors import BrainlikeError
from brainlike.models import ExtractionOptions, Features, extract_features, load_model
from brainlike.neural import word_locked_responses
from brainlike.neural.dataset import NeuralDataset
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


def simulated_subjects(spec: ExperimentSpec, stim: Stimulus, features: dict[str, Features]) -> list[tuple[NeuralDataset, pd.DataFrame]]:
    """Simulated ECoG subjects (with their ground truth tables) for a zoo spec."""
    from brainlike.neural.simulate import default_regions, simulate_ecog

    if spec.dataset.kind != "simulated-ecog":
        raise BrainlikeError(f"dataset.kind {spec.dataset.kind!r} is not supported by `brainlike run` yet; "
                             "use simulated-ecog, or the Python loaders in brainlike.neural.bids")
    planted = spec.dataset.planted or {k: 1.0 for k in features}
    levels = zoo_levels(features, planted)
    n_sub = spec.dataset.subjects if isinstance(spec.dataset.subjects, int) else len(spec.dataset.subjects)
    labels = spec.dataset.subjects if isinstance(spec.dataset.subjects, list) else [f"sim-{i + 1:02d}" for i in range(n_sub)]
    out = []
    for i, label in enumerate(labels):
        regions = default_regions(levels.shape[0], n_channels=spec.dataset.channels_per_region, snr=spec.dataset.snr)
        sim = simulate_ecog(stim, levels, regions=regions, seed=spec.seed + 1000 * i, subject=label)
        out.append((sim.dataset, sim.truth))
    return out


def run_experiment(spec: ExperimentSpec, console: Console | None = None, progress: bool = True) -> RunResult:
    """Run a spec end to end; returns the store (and report path)."""
    console = console or Console(stderr=True)
    t0 = time.time()
    out = Path(spec.output)
    store = ResultsStore(out / "results")
    stim = load_stimulus(spec)
    console.print(f"[bold]{spec.name}[/]: {len(spec.models)} models, stimulus {stim.name!r} ({len(stim)} words)")
    opts = ExtractionOptions(pooling=spec.features.pooling, dtype=spec.features.dtype,
                             max_window=spec.features.max_window, batch_size=spec.features.batch_size)
    features: dict[str, Features] = {}
    for m in spec.models:
        console.print(f"features: {m.key}")
        lm = load_model(m.name, dtype=spec.features.dtype, revision=m.revision)
        f = extract_features(lm, stim, opts, progress=progress)
        f.model = m.key
        features[m.key] = f
    subjects = simulated_subjects(spec, stim, features)
    enc = spec.encoding
    channel_rows = []
    for ds, truth in subjects:
        ds, dropped = ds.drop_bad_channels()
        if dropped:
            console.print(f"[yellow]{ds.subject}: excluded {len(dropped)} NaN/flat channels: {dropped[:8]}[/]")
        Y = word_locked_responses(ds, stim, window=tuple(enc.window))
        ct = ds.channel_table().assign(subject=ds.subject)
        channel_rows.append(ct.merge(truth[["channel", "best_layer", "is_noise"]].rename(
            columns={"best_layer": "planted_level"}), on="channel", how="left"))
        for key, f in features.items():
            if store.has("scores", model=key, subject=ds.subject):
                continue
            console.print(f"encoding: {key} × {ds.subject} ({f.n_layers} layers, {ds.n_channels} channels)")
            sc = score_layers(f, Y, channels=ds.channels, regions=ds.regions, model=key, subject=ds.subject,
                              n_splits=enc.n_splits, inner_splits=enc.inner_splits,
                              alphas=None if enc.alphas is None else np.asarray(enc.alphas),
                              backend=enc.backend, n_permutations=enc.n_permutations, seed=spec.seed,
                              progress=progress)
            store.write("scores", sc, model=key, subject=ds.subject)
        if spec.analyses.context:
            for key in features:
                lm = load_model(next(m.name for m in spec.models if m.key == key), dtype=spec.features.dtype)
                for n_ctx in spec.analyses.context.windows:
                    if store.has("context_scores", model=key, subject=ds.subject, context=n_ctx):
                        continue
                    fc = extract_features(lm, stim, ExtractionOptions(**{**opts.__dict__, "context_tokens": n_ctx}),
                                          progress=progress)
                    sc = score_layers(fc, Y, channels=ds.channels, regions=ds.regions, model=key,
                                      subject=ds.subject, n_splits=enc.n_splits, inner_splits=enc.inner_splits,
                                      backend=enc.backend, progress=progress)
                    store.write("context_scores", sc.assign(context=n_ctx), model=key, subject=ds.subject,
                                context=n_ctx)
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
    hier_col = spec.dataset.hierarchy
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
                cap_rows.append(store.read("capability_cache", where=f"model = '{m.key}'").iloc[0].to_dict())
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
