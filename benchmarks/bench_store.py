"""Time of one `ResultsStore.query` on a store of ~100k rows (the verified, read-only path) against the
unchecked DuckDB views over ``read_parquet`` it replaced.

    PYTHONPATH=src python benchmarks/bench_store.py [--pieces 100] [--rows 1000] [--repeats 5]

A "scores"-like table: ``pieces`` (model, subject) pieces of ``rows`` rows each (9 columns). Prints the
fastest of ``repeats`` runs for each path, and checks that both give the same answer.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from brainlike.store import ResultsStore

SQL = "SELECT model, layer, avg(r) AS r, count(*) AS n FROM scores GROUP BY model, layer ORDER BY model, layer"


def build(root: Path, pieces: int, rows: int) -> ResultsStore:
    store = ResultsStore(root)
    rng = np.random.default_rng(0)
    for i in range(pieces):
        n_ch = rows // 10
        df = pd.DataFrame({"layer": np.repeat(np.arange(10), n_ch),
                           "relative_layer": np.repeat(np.arange(10) / 9, n_ch),
                           "channel": [f"e{c:03d}" for c in range(n_ch)] * 10, "region": "STG",
                           "r": rng.standard_normal(rows).astype(np.float32), "alpha": 10.0, "n_samples": 600})
        store.write("scores", df, model=f"model-{i % 10}", subject=f"sub-{i // 10:02d}")
    return store


def old_query(root: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect()
    glob = str(root / "scores" / "**" / "*.parquet")
    con.execute(f"CREATE VIEW scores AS SELECT * FROM read_parquet('{glob}', "
                "union_by_name=true, hive_partitioning=false)")
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pieces", type=int, default=100)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        t0 = time.perf_counter()
        store = build(root, a.pieces, a.rows)
        t_write = time.perf_counter() - t0
        new, old = store.query(SQL), old_query(root, SQL)
        pd.testing.assert_frame_equal(new, old)
        t_new = best(lambda: store.query(SQL), a.repeats)
        t_old = best(lambda: old_query(root, SQL), a.repeats)
        t_read = best(lambda: store.read("scores"), a.repeats)
        t_has = best(lambda: store.has("scores", model="model-3", subject="sub-04"), a.repeats)
        print(f"{a.pieces} pieces x {a.rows} rows = {a.pieces * a.rows} rows; writing them: {t_write:.2f} s")
        print(f"query, verified read-only (this store): {t_new * 1e3:.0f} ms")
        print(f"query, unchecked read_parquet views (before): {t_old * 1e3:.0f} ms")
        print(f"read('scores') -> DataFrame: {t_read * 1e3:.0f} ms; has() of one piece: {t_has * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
