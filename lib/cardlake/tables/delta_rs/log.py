"""The log reader: one Delta snapshot as its files, typed partition values and schema.

What the engine's reads and the SQL catalog's scans both start from. :func:`refuse_unreadable`
refuses the Delta features the engine's scan cannot read; :func:`refuse_unsupported` also refuses
what a plain Parquet reader would misread (column mapping, deletion vectors).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
from deltalake import DeltaTable
from pyspark.sql.types import (
    BooleanType,
    ByteType,
    DataType,
    DateType,
    IntegerType,
    LongType,
    ShortType,
    StructType,
    TimestampType,
)

from cardlake.tables.base import (
    PartitionSpec,
    TableError,
    UnsupportedTableFeatureError,
    normalise_partitions,
)
from cardlake.tables.delta_rs.schema import (
    column_mapping_mode,
    logical_schema,
    physical_schema,
    spark_schema,
)

HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# Reader features whose files a plain Parquet scan reads correctly (given delta-rs's log replay).
_READABLE_FEATURES = {"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck", "deletionVectors"}


@dataclass(frozen=True)
class FileEntry:
    """One data file of a snapshot, as its add action in the log describes it."""

    log_path: str  # as in the log (percent-encoded) and as delta-rs hands it back
    abs_path: str  # on disk
    size: int
    partition: dict[str, Any]  # typed values


@dataclass(frozen=True)
class Snapshot:
    """One version of a table: its files, typed partition values and schema."""

    path: str
    version: int
    schema: StructType  # logical names
    partition_columns: list[str]
    files: list[FileEntry]
    # Column mapping (name mode): the schema with the Parquet files' physical names, else None.
    physical_schema: StructType | None = None
    # Deletion vectors: absolute file path -> row indexes deleted from that file.
    deleted_rows: dict[str, list[int]] = field(default_factory=dict)


def local_dir(path: str) -> str:
    """The table's local folder; a table on object storage or HDFS is refused."""
    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        return os.path.abspath(unquote(parsed.path) if parsed.scheme else path)
    raise TableError(
        f"the delta-rs engine commits tables in local folders; {path} is on {parsed.scheme}://. "
        "Use tables.engine: delta-spark for object storage or HDFS."
    )


def file_entries(table: DeltaTable, local: str) -> list[FileEntry]:
    """The files of ``table``'s loaded version, with partition values typed by delta-rs."""
    actions = pa.table(table.get_add_actions(flatten=False))
    if actions.num_rows == 0:
        return []
    paths = actions.column("path").to_pylist()
    sizes = actions.column("size_bytes").to_pylist()
    if "partition" in actions.column_names:
        partitions = actions.column("partition").to_pylist()
    else:
        partitions = [{} for _ in paths]
    entries = []
    for log_path, size, partition in zip(paths, sizes, partitions, strict=True):
        relative = unquote(log_path)
        absolute = (
            unquote(urlparse(relative).path) if "://" in relative else os.path.join(local, relative)
        )
        entries.append(FileEntry(log_path, absolute, size, dict(partition or {})))
    return entries


def read_snapshot(
    table: DeltaTable, path: str, *, partitions: PartitionSpec | None = None
) -> Snapshot:
    """The files of ``table``'s loaded version (pruned to ``partitions``) with their typed
    partition values, its schema, column mapping and deleted rows; refuses what it cannot read."""
    refuse_unreadable(table, path)
    schema = spark_schema(table)
    partition_columns = list(table.metadata().partition_columns)
    wanted = normalise_partitions(partitions)
    if wanted:
        unknown = sorted(set(wanted) - set(partition_columns))
        if unknown:
            raise TableError(
                f"{path}: {unknown} are not partition columns (partitioned by {partition_columns})"
            )
        wanted = {
            col: [typed_partition_value(v, schema[col].dataType) for v in values]
            for col, values in wanted.items()
        }
    local = local_dir(path)
    files = [
        entry
        for entry in file_entries(table, local)
        if not wanted or all(entry.partition.get(c) in vs for c, vs in wanted.items())
    ]
    mapped = column_mapping_mode(table) == "name"
    return Snapshot(
        path,
        table.version(),
        logical_schema(schema) if mapped else schema,
        partition_columns,
        files,
        physical_schema=physical_schema(schema) if mapped else None,
        deleted_rows=deleted_rows(table, {f.abs_path for f in files}, path),
    )


def refuse_unreadable(table: DeltaTable, path: str) -> None:
    """Refuses what the engine's scan cannot read correctly; DVs and name mapping it applies."""
    features = set(table.protocol().reader_features or [])
    unknown = sorted(features - _READABLE_FEATURES - {"columnMapping"})
    if unknown:
        raise UnsupportedTableFeatureError(
            f"{path} uses Delta reader feature(s) {unknown}, which the delta-rs engine cannot "
            "read correctly; read it with the delta-spark engine"
        )
    mode = column_mapping_mode(table)
    if mode not in ("none", "name"):
        raise UnsupportedTableFeatureError(
            f"{path} uses column mapping mode {mode!r} (Parquet columns matched by field id), "
            "which the delta-rs engine does not read; read it with the delta-spark engine"
        )


def refuse_unsupported(table: DeltaTable, path: str) -> None:
    """The SQL catalog's plain Parquet reader: refuses mapped columns and deletion vectors too."""
    refuse_unreadable(table, path)
    mapping = column_mapping_mode(table)
    if mapping != "none":
        raise UnsupportedTableFeatureError(
            f"{path} uses column mapping (mode {mapping!r}): its Parquet column names differ from "
            "the table's; read it with the delta-spark engine"
        )
    if "deletionVectors" in set(table.protocol().reader_features or []):
        # get_add_actions does not show deletion vectors; deletion_vectors() lists them.
        try:
            with_dvs = pa.table(table.deletion_vectors()).num_rows
        except Exception as exc:
            raise UnsupportedTableFeatureError(
                f"{path} has deletion vectors that delta-rs could not read ({exc}); refusing "
                "rather than returning deleted rows. Read it with the delta-spark engine"
            ) from exc
        if with_dvs:
            raise UnsupportedTableFeatureError(
                f"{path} has {with_dvs} file(s) with deletion vectors (deleted rows still in the "
                "Parquet files); a plain file scan would return them, so the delta-rs engine "
                "refuses. Read it with the delta-spark engine, or purge them (REORG TABLE ... "
                "APPLY (PURGE))"
            )


def deleted_rows(table: DeltaTable, wanted: set[str], path: str) -> dict[str, list[int]]:
    """Row indexes each file's deletion vector removes (only files in ``wanted``)."""
    if "deletionVectors" not in set(table.protocol().reader_features or []):
        return {}
    try:
        vectors = pa.table(table.deletion_vectors())
    except Exception as exc:
        raise UnsupportedTableFeatureError(
            f"{path} has deletion vectors that delta-rs could not read ({exc}); refusing "
            "rather than returning deleted rows. Read it with the delta-spark engine"
        ) from exc
    deleted: dict[str, list[int]] = {}
    for uri, keep in zip(
        vectors.column("filepath").to_pylist(),
        vectors.column("selection_vector").to_pylist(),
        strict=True,
    ):
        local = unquote(urlparse(uri).path) if "://" in uri else uri
        if local in wanted:
            deleted[local] = [i for i, kept in enumerate(keep or []) if not kept]
    return deleted


def typed_partition_value(value: Any, data_type: DataType) -> Any:
    """A partition value as the log or a folder spells it, typed as the column's Python value."""
    if value is None:
        return None
    if isinstance(data_type, DateType):
        return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    if isinstance(data_type, TimestampType):
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=UTC)
    if isinstance(data_type, IntegerType | LongType | ShortType | ByteType):
        return int(value)
    if isinstance(data_type, BooleanType):
        return value if isinstance(value, bool) else str(value).lower() == "true"
    return str(value)


def partition_values_from_dir(relative: str, partition_columns: list[str]) -> dict[str, Any]:
    """The partition values a Hive-style relative file path spells (strings; None for null)."""
    values: dict[str, str | None] = {}
    for segment in relative.split("/")[:-1]:
        name, _, raw = segment.partition("=")
        if name in partition_columns:
            text = unquote(raw)  # Spark escapes partition values like Hive (%XX)
            values[name] = None if text == HIVE_NULL_PARTITION else text
    missing = [c for c in partition_columns if c not in values]
    if missing:
        raise TableError(f"staged file {relative} has no folder for partition columns {missing}")
    return values


def folders_agree_with_log(snapshot: Snapshot) -> bool:
    """Whether every file sits in Hive-style folders that spell its logged partition values."""
    if not snapshot.partition_columns:
        return True
    if any(
        isinstance(snapshot.schema[c].dataType, TimestampType) for c in snapshot.partition_columns
    ):
        return False  # folder spellings of instants vary between writers; use the log's values
    root = local_dir(snapshot.path) + os.sep
    for entry in snapshot.files:
        if not entry.abs_path.startswith(root):
            return False
        relative = entry.abs_path[len(root) :]
        segments = relative.split("/")[:-1]
        if [s.partition("=")[0] for s in segments] != snapshot.partition_columns:
            return False
        try:
            from_dirs = partition_values_from_dir(relative, snapshot.partition_columns)
        except TableError:
            return False
        for column in snapshot.partition_columns:
            raw = from_dirs[column]
            typed = (
                None
                if raw is None
                else typed_partition_value(raw, snapshot.schema[column].dataType)
            )
            if typed != entry.partition.get(column) or (raw is not None and raw == ""):
                return False
    return True
