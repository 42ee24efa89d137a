"""The statistics a new data file records in its add action (min, max, null counts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow.parquet as pq
from pyspark.sql.types import StructType

_STATS_TYPES = ("int", "bigint", "smallint", "tinyint", "date", "timestamp", "boolean")
_MAX_STRING_STAT = 32


def stats_columns(
    configuration: Mapping[str, str | None], schema: StructType, partition_columns: Sequence[str]
) -> set[str]:
    """The columns whose statistics a new file records, by the table's properties as Delta
    defines them: ``delta.dataSkippingStatsColumns`` (a comma-separated list) when set, else the
    first ``delta.dataSkippingNumIndexedCols`` data columns (-1: all). Without either, all (this
    engine's behaviour before it honoured them). Personal columns are left out this way."""
    data = [f.name for f in schema.fields if f.name not in partition_columns]
    listed = configuration.get("delta.dataSkippingStatsColumns")
    if listed is not None:
        names = {n.strip().strip("`") for n in listed.split(",") if n.strip()}
        return {n for n in data if n in names}
    count = configuration.get("delta.dataSkippingNumIndexedCols")
    if count is not None and int(count) >= 0:
        return set(data[: int(count)])
    return set(data)


def file_stats(
    file_path: str, schema: StructType, partition_columns: list[str], indexed: set[str]
) -> tuple[dict[str, Any], int]:
    """A written file's add-action statistics (``indexed`` columns only) and its row count."""
    metadata = pq.read_metadata(file_path)
    stats: dict[str, Any] = {"numRecords": metadata.num_rows}
    minimum: dict[str, Any] = {}
    maximum: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    kinds = {f.name: f.dataType.simpleString() for f in schema.fields}
    # Row groups number their leaf columns: a struct before a column shifts its index, so a
    # top-level column is found by its path (a struct itself has no leaf of its own name).
    leaves = {metadata.schema.column(i).path: i for i in range(len(metadata.schema))}
    for name in metadata.schema.to_arrow_schema().names:
        index = leaves.get(name)
        if index is None or name in partition_columns or name not in kinds or name not in indexed:
            continue
        kind = kinds[name]
        column_stats = [
            metadata.row_group(g).column(index).statistics for g in range(metadata.num_row_groups)
        ]
        if not column_stats or any(s is None for s in column_stats):
            continue
        if all(s.has_null_count for s in column_stats):
            nulls[name] = int(sum(s.null_count for s in column_stats))
        with_values = [s for s in column_stats if s.has_min_max]
        if not with_values or not (kind in _STATS_TYPES or kind == "string"):
            continue
        low = min(s.min for s in with_values)
        high = max(s.max for s in with_values)
        if kind == "string" and (len(low) > _MAX_STRING_STAT or len(high) > _MAX_STRING_STAT):
            continue  # a truncated max would not bound the column; skip rather than mislead
        minimum[name], maximum[name] = _stat_value(low), _stat_value(high)
    if minimum:
        stats["minValues"], stats["maxValues"] = minimum, maximum
    if nulls:
        stats["nullCount"] = nulls
    return stats, metadata.num_rows


def _stat_value(value: Any) -> Any:
    if isinstance(value, datetime):
        as_utc = value if value.tzinfo else value.replace(tzinfo=UTC)
        return as_utc.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
