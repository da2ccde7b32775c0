"""Results store: tidy tables as parquet files in a folder, queried with DuckDB.

Layout::

    <root>/<table>/<key>=<value>/.../part.parquet

Every table is a DuckDB view of the same name, so ``store.query("SELECT model, max(r) FROM scores GROUP BY
model")`` works, and so does ``brainlike results query "..." --store <root>``. Pieces are written
atomically (temporary file + rename), so an interrupted sweep leaves only complete pieces; ``has()`` lets
a sweep skip finished work when it is run again.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb
import pandas as pd

from brainlike.errors import BrainlikeError

_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def _part(value) -> str:
    return _SAFE.sub("_", str(value)) or "_"


class ResultsStore:
    """A folder of parquet tables.

    Args:
        root: the folder (created on first write).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _piece(self, table: str, partition: dict) -> Path:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
            raise BrainlikeError(f"table names are identifiers; got {table!r}")
        path = self.root / table
        for k, v in partition.items():
            path = path / f"{k}={_part(v)}"
        return path / "part.parquet"

    def write(self, table: str, df: pd.DataFrame, **partition) -> Path:
        """Write (replace) one piece of ``table``. Partition keys are kept as columns too."""
        path = self._piece(table, partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        missing = [k for k in partition if k not in df.columns]
        if missing:  # partition values must live in the data too, not only in folder names
            df = df.assign(**{k: partition[k] for k in missing})
        tmp = path.with_name(f".part.parquet.tmp{os.getpid()}")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path

    def has(self, table: str, **partition) -> bool:
        """Whether a piece was written (a sweep skips it when run again)."""
        return self._piece(table, partition).exists()

    def clean_tmp(self) -> list[Path]:
        """Delete temporary files left by writes that were killed before their rename; returns them."""
        if not self.root.exists():
            return []
        stale = [p for p in self.root.rglob(".part.parquet.tmp*") if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def tables(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and any(p.rglob("*.parquet")))

    def read(self, table: str, where: str | None = None) -> pd.DataFrame:
        """The whole table (all pieces) as a DataFrame, optionally filtered by a SQL condition."""
        if table not in self.tables():
            raise BrainlikeError(f"no table {table!r} in {self.root}; tables: {self.tables()}")
        sql = f"SELECT * FROM {table}" + (f" WHERE {where}" if where else "")
        return self.query(sql)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per table."""
        con = duckdb.connect()
        for t in self.tables():
            glob = str(self.root / t / "**" / "*.parquet")
            # hive_partitioning=false: the columns inside the files are authoritative
            con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{glob}', union_by_name=true, "
                        "hive_partitioning=false)")
        return con

    def query(self, sql: str) -> pd.DataFrame:
        """Run SQL over the tables; returns a DataFrame."""
        con = self.connect()
        try:
            return con.execute(sql).df()
        except duckdb.Error as exc:
            raise BrainlikeError(f"query failed: {exc}\ntables: {self.tables()}") from None
        finally:
            con.close()
