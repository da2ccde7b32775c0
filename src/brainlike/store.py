"""Results store: tidy tables as checksummed parquet pieces in a folder, queried read-only with DuckDB.

Layout::

    <root>/<table>/<key>=<value>/.../part.parquet      one piece of the table
    <root>/<table>/<key>=<value>/.../manifest.json     its sha256, size, rows and the raw partition values
    <root>/.lock                                       serialises writes against reads (brainlike.locking)

Every table is a DuckDB table of the same name, so ``store.query("SELECT model, max(r) FROM scores GROUP BY
model")`` works, and so does ``brainlike results query "..." --store <root>``.

* **Crash-safe pieces.** A piece is written through :func:`brainlike.fileio.atomic_write` and its manifest
  after it, so a reader sees the old piece or the whole new one; :meth:`ResultsStore.has` is true only for
  a piece whose bytes match its manifest, so a sweep refits a missing, cut-short or damaged piece, and
  :meth:`ResultsStore.read` / :meth:`ResultsStore.query` refuse such a piece with an error naming it (they
  never return numbers from unverified bytes).
* **One folder per partition value.** Folder names keep the characters ``A-Za-z0-9._+-`` of a value; a
  value with any other character (``tiny/v1``, ``α-model``, an empty one, a very long one) gets a short
  hash of the raw value after a ``~`` (a character no plain name has), so two values never share a folder.
  The manifest records the raw values, and a write or ``has()`` that finds another value's piece in its
  folder (a case-insensitive file system: ``Tiny`` and ``tiny``) is refused with both labels named.
* **Read-only SQL.** A query must be one ``SELECT`` (or ``WITH ... SELECT``) statement, checked by DuckDB's
  own parser; it runs on an in-memory connection that holds the verified pieces as Arrow tables, with
  file access disabled and the configuration locked, so it cannot read, write or attach any file, load
  extensions or reach the network. Values are passed as parameters (``?``), never pasted into SQL.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from brainlike.errors import BrainlikeError
from brainlike.fileio import atomic_write_bytes, atomic_write_json, clean_tmp, sha256_file
from brainlike.locking import file_lock

_SAFE = re.compile(r"[^A-Za-z0-9._+-]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_NAME = 80  # longer values are cut (and hashed) so that folder names stay well below 255 bytes

PIECE = "part.parquet"
MANIFEST = "manifest.json"
LOCK = ".lock"


def partition_dirname(value: Any) -> str:
    """The folder name of a partition value (the part after ``key=``): one folder per distinct value.

    A value made only of ``A-Za-z0-9._+-`` (at most 80 characters) is its own name; any other value keeps
    its safe characters (others become ``_``) followed by ``~`` and the first 10 hex digits of the sha256
    of the raw value: ``tiny/v1`` → ``tiny_v1~<hash>``, distinct from ``tiny_v1``.
    """
    raw = str(value)
    safe = _SAFE.sub("_", raw)
    if safe == raw and 0 < len(raw) <= _MAX_NAME:
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{safe[:64]}~{digest}"


_part = partition_dirname  # the name used before (brainlike.execution.staging)


def quote_ident(name: str) -> str:
    """A SQL identifier in double quotes (embedded quotes doubled): safe for any column name."""
    return '"' + str(name).replace('"', '""') + '"'


def _plain(value: Any) -> Any:
    """A JSON / SQL-parameter friendly scalar (numpy scalars become Python ones)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _dictionary_to_values(table: pa.Table) -> pa.Table:
    """Dictionary-encoded (categorical) columns as plain columns, as DuckDB's parquet reader gives them."""
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
    return table


def select_statement(sql: str) -> str:
    """``sql`` when it is exactly one read-only statement (``SELECT``, ``WITH ... SELECT``, ``VALUES``...).

    Checked with DuckDB's own parser (not a regular expression).

    Raises
    ------
    BrainlikeError
        For an empty query, a syntax error, several statements, or any statement that is not a SELECT
        (``COPY``, ``ATTACH``, ``INSTALL``, ``SET``, ``PRAGMA``, ``CREATE``, ...).
    """
    if not isinstance(sql, str) or not sql.strip():
        raise BrainlikeError("the SQL query is empty; give one SELECT statement, e.g. "
                             "\"SELECT model, brain_score FROM brain_scores\"")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise BrainlikeError(f"the SQL query does not parse: {exc}") from None
    if not statements:
        raise BrainlikeError("the SQL query has no statement (only comments?); give one SELECT statement")
    if len(statements) > 1:
        raise BrainlikeError(f"the SQL query has {len(statements)} statements; give exactly one SELECT statement "
                             "(queries of the results store are read-only)")
    if statements[0].type != duckdb.StatementType.SELECT:
        word = (re.findall(r"[A-Za-z]+", statements[0].query) or ["other"])[0].upper()
        article = "an" if word[0] in "AEIOU" else "a"
        raise BrainlikeError(f"only read-only queries are allowed: one SELECT (or WITH ... SELECT) statement over "
                             f"the store's tables, not {article} {word} statement")
    return sql


class ResultsStore:
    """A folder of checksummed parquet tables.

    Parameters
    ----------
    root : str or Path
        The folder (created on the first write).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ------------------------------------------------------------------ layout
    def exists(self) -> bool:
        """Whether the store's folder exists."""
        return self.root.is_dir()

    def require(self) -> None:
        """Raise a clear error when the store's folder does not exist (a mistyped ``--store``)."""
        if self.root.is_dir():
            return
        if self.root.exists():
            raise BrainlikeError(f"results store {self.root} is a file, not a folder; give the `results` folder "
                                 "of a run (e.g. brainlike-out/zoo/results)")
        raise BrainlikeError(f"no results store at {self.root}: the folder does not exist; give the `results` "
                             "folder of a run (e.g. --store brainlike-out/zoo/results)")

    def _piece(self, table: str, partition: dict) -> Path:
        if not isinstance(table, str) or not _IDENT.fullmatch(table):
            raise BrainlikeError(f"table names are identifiers (letters, digits, _); got {table!r}")
        path = self.root / table
        for k, v in partition.items():
            if not _IDENT.fullmatch(k):
                raise BrainlikeError(f"partition keys are identifiers (letters, digits, _); got {k!r}")
            path = path / f"{k}={partition_dirname(v)}"
        return path / PIECE

    def _lock(self, shared: bool = False):
        if shared:  # readers never create the lock file, so a query leaves the store's files as they were
            return file_lock(self.root / LOCK, shared=True, create=False, optional=True,
                             what=f"the results store {self.root}")
        return file_lock(self.root / LOCK, what=f"the results store {self.root}", note=False)

    @staticmethod
    def _manifest(folder: Path) -> dict | None:
        try:
            man = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        return man if isinstance(man, dict) else None

    @staticmethod
    def _check_owner(man: dict | None, table: str, partition: dict, folder: Path) -> None:
        """Refuse when the piece in ``folder`` belongs to other partition values (a folder-name collision)."""
        if not man or not isinstance(man.get("partition"), dict):
            return
        stored = {k: str(v) for k, v in man["partition"].items()}
        wanted = {k: str(v) for k, v in partition.items()}
        if stored != wanted:
            clash = ", ".join(f"{k} {stored.get(k)!r} and {k} {wanted.get(k)!r}"
                              for k in sorted(set(stored) | set(wanted)) if stored.get(k) != wanted.get(k))
            raise BrainlikeError(f"{table}: {clash} map to the same folder {folder} (a case-insensitive file "
                                 "system?); give one of them another label (the spec's `label:`), so that "
                                 "neither overwrites the other's results")

    # ------------------------------------------------------------------ writing
    def write(self, table: str, df: pd.DataFrame, **partition: Any) -> Path:
        """Write (replace) one piece of ``table`` and its checksum; partition keys are kept as columns too.

        Parameters
        ----------
        table : str
            Table name (an identifier).
        df : DataFrame
            The piece's rows.
        **partition
            Partition values (``model="smollm2-135m", subject="sim-01"``); each becomes a folder level.

        Returns
        -------
        Path
            The piece's parquet file.

        Raises
        ------
        BrainlikeError
            When another value's piece lives in the same folder (both are named), or the folder is
            read-only or the disk full (the piece stored before, if any, is left as it was).
        """
        path = self._piece(table, partition)
        missing = [k for k in partition if k not in df.columns]
        if missing:  # partition values must live in the data too, not only in folder names
            df = df.assign(**{k: partition[k] for k in missing})
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        data = buf.getvalue()
        manifest = {"format": 1, "table": table, "file": PIECE,
                    "partition": {k: _plain(v) for k, v in partition.items()},
                    "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": len(df)}
        with self._lock():
            self._check_owner(self._manifest(path.parent), table, partition, path.parent)
            atomic_write_bytes(path, data)  # the piece first: an old manifest never vouches for new bytes
            atomic_write_json(path.parent / MANIFEST, manifest)
        return path

    def clean_tmp(self) -> list[Path]:
        """Delete temporary files left by writes that were killed before their rename; returns them."""
        stale = clean_tmp(self.root)
        if self.root.exists():  # the names used before brainlike.fileio
            for p in self.root.rglob(".part.parquet.tmp*"):
                if p.is_file():
                    p.unlink(missing_ok=True)
                    stale.append(p)
        return stale

    # ------------------------------------------------------------------ checking
    def piece_status(self, table: str, **partition: Any) -> str:
        """The state of one piece: ``"ok"``, ``"missing"``, ``"unverified"`` or ``"damaged"``.

        ``"ok"``: the bytes match the manifest; ``"unverified"``: no or unreadable manifest; ``"damaged"``:
        the bytes differ from the manifest (cut short, changed).

        Raises
        ------
        BrainlikeError
            When the folder holds the piece of other partition values (a collision; both are named).
        """
        path = self._piece(table, partition)
        if not path.is_file():
            return "missing"
        with self._lock(shared=True):
            man = self._manifest(path.parent)
            self._check_owner(man, table, partition, path.parent)
            if man is None or not isinstance(man.get("sha256"), str):
                return "unverified"
            try:
                ok = path.stat().st_size == man.get("bytes") and sha256_file(path) == man["sha256"]
            except OSError:
                return "missing"
        return "ok" if ok else "damaged"

    def has(self, table: str, **partition: Any) -> bool:
        """Whether a verified piece is stored (a sweep skips it when run again, and refits it otherwise)."""
        return self.piece_status(table, **partition) == "ok"

    def _pieces(self, table: str) -> list[Path]:
        """The piece files of ``table``: ``<table>[/<key>=<value>...]/part.parquet``, sorted."""
        base = self.root / table
        return sorted(p for p in base.rglob(PIECE)
                      if p.is_file() and all("=" in part for part in p.relative_to(base).parts[:-1]))

    def tables(self) -> list[str]:
        """Names of the tables that have at least one piece (``[]`` when the folder does not exist)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and _IDENT.fullmatch(p.name) and self._pieces(p.name))

    # ------------------------------------------------------------------ reading
    def _load(self, table: str) -> pa.Table:
        """All verified pieces of ``table`` as one Arrow table (columns united by name)."""
        parts = []
        for path in self._pieces(table):
            man = self._manifest(path.parent)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise BrainlikeError(f"cannot read {path}: {exc.strerror or exc}") from None
            if man is None or not isinstance(man.get("sha256"), str):
                reason = f"it has no checksum ({MANIFEST} is missing or unreadable)"
            elif len(data) != man.get("bytes") or hashlib.sha256(data).hexdigest() != man["sha256"]:
                reason = ("its bytes do not match their checksum "
                          "(the file was cut short or changed after it was written)")
            else:
                reason = ""
                try:  # parsed from the very bytes that were checked
                    parts.append(_dictionary_to_values(pq.read_table(pa.BufferReader(data))))
                except (pa.ArrowException, OSError) as exc:
                    reason = f"it is not a readable parquet file ({exc})"
            if reason:
                raise BrainlikeError(f"damaged results piece {path}: {reason}, so it is not read (it could give wrong "
                                     "numbers). Run the `brainlike run` that wrote it again (it refits damaged "
                                     f"pieces), or delete {path.parent} to drop that piece")
        if not parts:
            raise BrainlikeError(f"no table {table!r} in {self.root}; tables: {self.tables()}")
        try:
            return pa.concat_tables(parts, promote_options="permissive")
        except pa.ArrowException as exc:
            raise BrainlikeError(f"the pieces of table {table!r} in {self.root} have incompatible columns: "
                                 f"{exc}") from None

    def connect(self, tables: Sequence[str] | None = None) -> duckdb.DuckDBPyConnection:
        """A read-only, in-memory DuckDB connection with one table per store table.

        The verified pieces are loaded as Arrow tables; then file access is disabled and the configuration
        locked, so SQL on this connection reads only the store's tables.

        Parameters
        ----------
        tables : sequence of str, optional
            Load only these tables (default: all).
        """
        self.require()
        con = duckdb.connect(":memory:")
        try:
            with self._lock(shared=True):
                for t in (self.tables() if tables is None else tables):
                    con.register(t, self._load(t))
            for setting in ("SET temp_directory = ''",  # no spill files: nothing is written anywhere
                            "SET enable_external_access = false", "SET autoinstall_known_extensions = false",
                            "SET autoload_known_extensions = false", "SET lock_configuration = true"):
                con.execute(setting)
        except BaseException:
            con.close()
            raise
        return con

    def _hint(self) -> str:
        """A pointer to ``<root>/results`` when the root looks like a run's output folder instead of its store."""
        inner = ResultsStore(self.root / "results")
        if not self.tables() and inner.tables():
            return f" ({self.root} looks like a run's output folder: did you mean --store {inner.root}?)"
        return ""

    def _referenced(self, sql: str) -> list[str]:
        """The store tables a query names (all of them when DuckDB cannot tell)."""
        have = self.tables()
        try:
            named = {n.casefold() for n in duckdb.get_table_names(sql)}
        except (duckdb.Error, AttributeError, TypeError):
            return have
        return [t for t in have if t.casefold() in named]

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        """Run one read-only SQL statement over the tables; returns a DataFrame.

        Parameters
        ----------
        sql : str
            One ``SELECT`` (or ``WITH ... SELECT``) statement; values belong in ``params``, as ``?``
            (positional) or ``$name`` (named) placeholders.
        params : sequence or dict, optional
            The placeholders' values.

        Raises
        ------
        BrainlikeError
            For a missing store, a statement that is not one SELECT, SQL that reads files, a damaged
            piece, or a query DuckDB rejects (the message lists the tables).
        """
        select_statement(sql)
        self.require()
        con = self.connect(self._referenced(sql))
        try:
            if isinstance(params, dict):
                params = {k: _plain(v) for k, v in params.items()}
            elif params is not None:
                params = [_plain(v) for v in params]
            return con.execute(sql, params).df() if params else con.execute(sql).df()
        except duckdb.PermissionException:
            raise BrainlikeError("the query tried to read or write a file: queries may read only the store's "
                                 f"tables ({', '.join(self.tables()) or 'none'})") from None
        except duckdb.Error as exc:
            raise BrainlikeError(f"query failed: {exc}\ntables: {self.tables()}{self._hint()}") from None
        finally:
            con.close()

    def read(self, table: str, where: dict[str, Any] | None = None) -> pd.DataFrame:
        """The whole table (all pieces) as a DataFrame, optionally only the rows equal to ``where``.

        Parameters
        ----------
        table : str
            Table name.
        where : dict, optional
            ``{column: value}``: keep the rows whose columns equal these values (``None`` matches missing
            values); passed as SQL parameters, so any value (``"o'brien"``) is safe.
        """
        if where is not None and not isinstance(where, dict):
            raise TypeError("where is a dict {column: value} (values are passed as SQL parameters)")
        self.require()
        if table not in self.tables():
            raise BrainlikeError(f"no table {table!r} in {self.root}; tables: {self.tables()}{self._hint()}")
        sql = f"SELECT * FROM {quote_ident(table)}"
        if where:
            sql += " WHERE " + " AND ".join(f"{quote_ident(k)} IS NOT DISTINCT FROM ?" for k in where)
        return self.query(sql, list(where.values()) if where else None)
