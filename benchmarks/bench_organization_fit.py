#!/usr/bin/env python
"""Benchmark of one K-pattern dictionary fit of a model's MLP neurons on the Brennan (2016) volumes.

The neurons of ``--model`` reading the recording's 2,127 words are binned to its 362 volumes (cached extraction,
:func:`brainlike.models.neurons.extract_neurons`), then one :class:`~brainlike.analyses.organization.PatternLearner`
fit (K = 64, alpha 0.1, 5 epochs, all neurons in memory, as ``examples/organization_brennan.yaml``) and the codes of
every neuron are timed for each ``--coder``. With more than one coder the patterns are matched one-to-one
(Hungarian on |r|) and the smallest matched |r| is printed: the speed-up must not change them.

Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_organization_fit.py --model smollm2-135m \
        --coder numba --coder numpy
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from brainlike.analyses.organization import PatternLearner
    from brainlike.analyses.organization.metrics import match_patterns
    from brainlike.analyses.organization.run import OrganizationConfig, brennan_recording
    from brainlike.analyses.organization.timecourses import iter_timecourses, tr_matrix
    from brainlike.models.neurons import NeuronOptions, extract_neurons

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--coder", action="append", choices=["numba", "numpy"])
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    rec, stim = brennan_recording(OrganizationConfig.parse({"models": [args.model], "data": {"kind": "brennan2016"}}))
    acts = extract_neurons(args.model, stim, NeuronOptions(), progress=False)
    binning = tr_matrix(acts.row_onsets(stim), rec.n_volumes, rec.tr, "mean")
    t0 = time.perf_counter()
    X = np.concatenate([tc for _, tc, _ in iter_timecourses(acts, binning)], axis=1).T
    dt = time.perf_counter() - t0
    print(f"{args.model}: {X.shape[0]} neurons x {X.shape[1]} volumes, time courses in {dt:.1f} s")
    comps = {}
    for coder in args.coder or ["numba"]:
        PatternLearner(4, 0.1, n_epochs=1, coder=coder).fit(X[:512])       # compile outside the timing
        t0 = time.perf_counter()
        learner = PatternLearner(args.k, 0.1, n_epochs=args.epochs, max_in_memory=len(X), random_state=0,
                                 coder=coder).fit(X)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        codes = learner.transform(X)
        t_code = time.perf_counter() - t0
        comps[coder] = learner.components_
        print(f"coder={coder}: fit {t_fit:.1f} s, codes of all neurons {t_code:.1f} s, "
              f"non-zero codes {(codes != 0).mean():.3f}")
    if len(comps) > 1:
        a, b = comps.values()
        print(f"matched |r| between the coders' patterns: min {match_patterns(a, b)[2].min():.4f}")


if __name__ == "__main__":
    main()
