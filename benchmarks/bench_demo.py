#!/usr/bin/env python
"""Profile of ``brainlike demo`` (the real-data demo) by stage, and a before/after ratio table.

``run``: one demo in this process under cProfile, into a fresh output folder, with ``$BRAINLIKE_CACHE`` at
``--cache`` (default: the user's cache); ``--cold`` empties that folder first (no feature cache, no converted
GGUF copy), a second run on the same ``--cache`` without ``--cold`` is the warm run. Writes a JSON with the
process CPU seconds (user + sys, ``resource.getrusage``), the wall seconds and, per stage, the cumulative
profiled seconds of the functions that make it (the machine is shared, so compare CPU seconds and call counts,
not wall time). The demo's results folder is kept (``--out``) so that two runs' tables can be compared.

``compare``: a markdown ratio table of two JSONs (stage by stage) and the largest absolute difference of every
numeric column of every results table of the two runs (the demo's numbers must not change).

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_demo.py run --label after-cold --cold --cache /tmp/c1 \
        --out /tmp/d-after
    PYTHONPATH=src .venv/bin/python benchmarks/bench_demo.py run --label after-warm --cache /tmp/c1 --out /tmp/d-after-w
    PYTHONPATH=/tmp/old/src .venv/bin/python benchmarks/bench_demo.py run --label before-cold --cold --out /tmp/d0
    .venv/bin/python benchmarks/bench_demo.py compare /tmp/d0.json /tmp/d-after.json
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

#: stage -> functions (``file suffix``, ``function name``) whose cumulative time makes it (summed; nested
#: functions of one stage are not listed twice)
STAGES: dict[str, list[tuple[str, str]]] = {
    "whole demo (run_demo)": [("brainlike/demo.py", "run_demo")],
    "features: cache lookup without the model": [("brainlike/models/extract.py", "cached_features")],
    "features: load_model": [("brainlike/models/loading.py", "load_model")],
    "features: forward passes (_extract)": [("brainlike/models/extract.py", "_extract")],
    "fMRI encoding fits (encode_layers)": [("brainlike/analyses/fmri_encoding.py", "encode_layers")],
    "null_calibration": [("brainlike/analyses/inference.py", "null_calibration")],
    "report: figures drawn (fmri_sections)": [("brainlike/report/fmri_report.py", "fmri_sections")],
    "report: PNG rendering (Figure.savefig)": [("matplotlib/figure.py", "savefig")],
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _stage_times(prof: cProfile.Profile) -> dict[str, dict[str, float]]:
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    out = {}
    for stage, funcs in STAGES.items():
        ct, calls = 0.0, 0
        for (file, _line, name), (_cc, nc, _tt, cum, _callers) in stats.items():
            if name == "<lambda>":
                continue
            if any(file.endswith(suffix) and name == fn for suffix, fn in funcs):
                ct += cum
                calls += nc
        out[stage] = {"seconds": round(ct, 2), "calls": calls}
    return out


def run(args: argparse.Namespace) -> None:
    if args.cache:
        os.environ["BRAINLIKE_CACHE"] = str(Path(args.cache).resolve())
    if args.cold:
        if not args.cache:
            os.environ["BRAINLIKE_CACHE"] = tempfile.mkdtemp(prefix="bench-demo-cache-")
        shutil.rmtree(os.environ["BRAINLIKE_CACHE"], ignore_errors=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    c0, t0 = _cpu(), time.time()
    prof = cProfile.Profile()
    prof.enable()
    from brainlike.demo import run_demo

    res = run_demo(out, progress=False)
    prof.disable()
    record = {"label": args.label, "cold": args.cold, "cpu_s": round(_cpu() - c0, 1),
              "wall_s": round(time.time() - t0, 1), "demo_wall_s": round(res.seconds, 1), "out": str(out.resolve()),
              "load_avg_1min_at_end": os.getloadavg()[0], "stages": _stage_times(prof),
              "python": sys.version.split()[0]}
    from brainlike.fileio import atomic_write_json

    atomic_write_json(Path(args.json or f"{out}.json"), record)
    print(json.dumps(record, indent=1))


def _table_diffs(a: Path, b: Path) -> list[tuple[str, float, int]]:
    import numpy as np
    import pandas as pd

    from brainlike.store import ResultsStore

    sa, sb = ResultsStore(a / "results"), ResultsStore(b / "results")
    rows = []
    for name in sorted(set(sa.tables()) & set(sb.tables())):
        da, db = sa.read(name), sb.read(name)
        if da.shape != db.shape:
            rows.append((name, float("inf"), len(da)))
            continue
        num = [c for c in da.columns if pd.api.types.is_numeric_dtype(da[c]) and c in db.columns]
        diff = 0.0
        for c in num:
            x, y = da[c].to_numpy(float), db[c].to_numpy(float)
            both = ~(np.isnan(x) & np.isnan(y))
            diff = max(diff, float(np.nanmax(np.abs(x[both] - y[both]), initial=0.0)))
        rows.append((name, diff, len(da)))
    return rows


def compare(args: argparse.Namespace) -> None:
    a, b = (json.loads(Path(p).read_text()) for p in (args.before, args.after))
    lines = [f"| stage | {a['label']} s (calls) | {b['label']} s (calls) | ratio |", "|---|---|---|---|"]
    lines.append(f"| process CPU, user+sys (unprofiled share included) | {a['cpu_s']} | {b['cpu_s']} | "
                 f"{b['cpu_s'] / a['cpu_s']:.2f} |")
    lines.append(f"| process wall | {a['wall_s']} | {b['wall_s']} | {b['wall_s'] / a['wall_s']:.2f} |")
    for stage in STAGES:
        x, y = a["stages"].get(stage, {"seconds": 0, "calls": 0}), b["stages"].get(stage, {"seconds": 0, "calls": 0})
        ratio = f"{y['seconds'] / x['seconds']:.2f}" if x["seconds"] else "–"
        lines.append(f"| {stage} | {x['seconds']} ({x['calls']}) | {y['seconds']} ({y['calls']}) | {ratio} |")
    lines += ["", f"load average (1 min) at the end: {a['load_avg_1min_at_end']:.1f} / {b['load_avg_1min_at_end']:.1f}",
              "", "| results table | rows | max abs difference of numeric columns |", "|---|---|---|"]
    lines += [f"| {n} | {r} | {d:.3g} |" for n, d, r in _table_diffs(Path(a["out"]), Path(b["out"]))]
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--label", required=True)
    r.add_argument("--cache", help="$BRAINLIKE_CACHE of the run (default: the user's)")
    r.add_argument("--cold", action="store_true", help="empty the cache folder first (a fresh one without --cache)")
    r.add_argument("--out", required=True, help="the demo's output folder (replaced)")
    r.add_argument("--json", help="where the record goes (default <out>.json)")
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("after")
    args = ap.parse_args()
    {"run": run, "compare": compare}[args.cmd](args)


if __name__ == "__main__":
    main()
