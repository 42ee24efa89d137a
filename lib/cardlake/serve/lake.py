"""Read-only access to the lake's Delta tables for the dashboard and the reports, without Spark.

Each table is opened with delta-rs at its latest commit; its files become a PyArrow dataset
that DuckDB scans with projection and filter push-down, so a page reads only the columns and
partitions it shows. Snapshots are cached per table and refreshed when the table's log moves
(one small listing of ``_delta_log`` per request), so a page always shows the latest commit and
says which version that is. Tables with deletion vectors or column mapping (written by
delta-spark) are read through delta-rs's own query engine, which applies both.

Nothing here writes to the lake.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

_NAME = re.compile(r"^(_?[a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)$")
_LAYER_DIRS = {
    "bronze": "bronze",
    "silver": "silver",
    "gold": "gold",
    "_quarantine": "_quarantine",
    "_ops": "_ops",
}
_HARD_FEATURES = {"deletionVectors", "columnMapping"}
RESULT_CACHE_SIZE = 256
DUCKDB_THREADS = 2


class TableNotBuilt(LookupError):
    """The table has no Delta log yet: the pipeline stage that writes it has not run."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True)
class Snapshot:
    """One table at one commit: what a page shows and which version it is."""

    name: str
    version: int
    committed_at: datetime | None
    data: ds.Dataset | pa.Table

    def describe(self) -> str:
        when = self.committed_at.strftime("%Y-%m-%d %H:%M UTC") if self.committed_at else "?"
        return f"{self.name} v{self.version} ({when})"


def _log_dir(path: str) -> str:
    return os.path.join(path, "_delta_log")


def _latest_log_marker(path: str) -> tuple[int, ...]:
    """A cheap fingerprint of the log: the highest commit file number (no JSON parsing)."""
    try:
        names = os.listdir(_log_dir(path))
    except (FileNotFoundError, NotADirectoryError):  # not a table (a file such as mlflow.db)
        return ()
    versions = [int(n[:20]) for n in names if n.endswith(".json") and n[:20].isdigit()]
    return (max(versions),) if versions else ()


def _commit_time(table: Any) -> datetime | None:
    try:
        entry = table.history(limit=1)[0]
    except Exception:  # an unreadable history must not hide the data
        return None
    ts = entry.get("timestamp")
    return datetime.fromtimestamp(ts / 1000, tz=UTC) if isinstance(ts, int | float) else None


def _open(name: str, path: str) -> Snapshot:
    from deltalake import DeltaTable, QueryBuilder

    table = DeltaTable(path)
    features = set(table.protocol().reader_features or [])
    mapping = (table.metadata().configuration or {}).get("delta.columnMapping.mode")
    data: ds.Dataset | pa.Table
    if features & _HARD_FEATURES or mapping not in (None, "none"):
        # delta-rs's DataFusion provider applies deletion vectors and column mapping.
        reader = QueryBuilder().register("t", table).execute("select * from t")
        data = reader.read_all() if hasattr(reader, "read_all") else pa.table(reader)
    else:
        data = table.to_pyarrow_dataset()
    return Snapshot(name=name, version=table.version(), committed_at=_commit_time(table), data=data)


class Lake:
    """The lake at ``root`` (a local folder), read-only.

    ``snapshot("gold.kpi_monthly")`` gives the latest commit; ``query(sql, ...)`` runs DuckDB
    SQL over snapshots bound by name. ``versions`` records which version of each table the last
    queries used, for the page footer.
    """

    def __init__(self, root: str) -> None:
        self.root = root.removeprefix("file://")
        self._cache: dict[str, tuple[tuple[int, ...], Snapshot]] = {}
        self._lock = threading.Lock()
        # one in-memory database; each query takes a cursor of it (a connection of its own,
        # whose registered tables no other query sees) instead of a new database (~15 ms)
        self._db = duckdb.connect()
        self._db.execute(f"SET threads TO {DUCKDB_THREADS}")
        # results by (sql, params, table versions): a new commit makes a new key, so a cached
        # answer is never stale; pages viewed again on unchanged tables skip DuckDB
        self._results: OrderedDict[tuple[str, str, tuple[Any, ...]], pd.DataFrame] = OrderedDict()

    def path(self, name: str) -> str:
        match = _NAME.match(name)
        if not match or match.group(1) not in _LAYER_DIRS:
            raise ValueError(f"not a lake table name: {name!r} (expected layer.table)")
        return os.path.join(self.root, _LAYER_DIRS[match.group(1)], match.group(2))

    def exists(self, name: str) -> bool:
        return bool(_latest_log_marker(self.path(name)))

    def snapshot(self, name: str) -> Snapshot:
        """The table's latest commit; raises :class:`TableNotBuilt` when it has none."""
        path = self.path(name)
        marker = _latest_log_marker(path)
        if not marker:
            raise TableNotBuilt(name)
        with self._lock:
            cached = self._cache.get(name)
            if cached and cached[0] == marker:
                return cached[1]
        snap = _open(name, path)
        with self._lock:
            self._cache[name] = (marker, snap)
        return snap

    def tables(self, layer: str) -> list[str]:
        """Names of the tables present in one layer folder, sorted."""
        folder = os.path.join(self.root, _LAYER_DIRS[layer])
        try:
            entries = sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
        return [f"{layer}.{e}" for e in entries if _latest_log_marker(os.path.join(folder, e))]

    def fingerprint(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Every table's latest commit number: equal fingerprints mean an unchanged lake."""
        marks = []
        for layer, folder_name in _LAYER_DIRS.items():
            folder = os.path.join(self.root, folder_name)
            try:
                entries = sorted(os.listdir(folder))
            except FileNotFoundError:
                continue
            marks += [
                (f"{layer}.{e}", _latest_log_marker(os.path.join(folder, e))) for e in entries
            ]
        return tuple(marks)

    @contextmanager
    def _connection(self, bound: Mapping[str, Snapshot]) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            con = self._db.cursor()
        try:
            for alias, snap in bound.items():
                con.register(alias, snap.data)
            yield con
        finally:
            con.close()

    def query(self, sql: str, params: list[Any] | None = None, **tables: str) -> pd.DataFrame:
        """DuckDB SQL with each keyword bound to a table: ``query("select * from t", t="gold.x")``.

        Raises :class:`TableNotBuilt` naming the first missing table.
        """
        bound = {alias: self.snapshot(name) for alias, name in tables.items()}
        key = (sql, repr(params), tuple((a, s.name, s.version) for a, s in sorted(bound.items())))
        with self._lock:
            cached = self._results.get(key)
            if cached is not None:
                self._results.move_to_end(key)
                return cached.copy()
        with self._connection(bound) as con:
            result = con.execute(sql, params or []).fetchdf()
        with self._lock:
            self._results[key] = result
            while len(self._results) > RESULT_CACHE_SIZE:
                self._results.popitem(last=False)
        return result.copy()

    def version_label(self, *names: str) -> str:
        """``gold.kpi_monthly v12 (2026-12-02 10:40 UTC)``, one per table, for page footers."""
        parts = []
        for name in names:
            try:
                parts.append(self.snapshot(name).describe())
            except TableNotBuilt:
                parts.append(f"{name} (not built yet)")
        return "; ".join(parts)
