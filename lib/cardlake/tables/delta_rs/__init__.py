"""The delta-rs engine: Spark computes and scans, delta-rs commits and resolves snapshots.

- :mod:`.engine`: :class:`DeltaRsEngine`, its writes, commits and conflict checks.
- :mod:`.log`: the log reader, a :class:`Snapshot` of one version (its :class:`FileEntry` files,
  typed partition values and schema) and the refusal of features a scan cannot read; the
  engine's reads and the SQL catalog's scans both use it.
- :mod:`.schema`: Spark and delta-rs schemas, and column mapping.
- :mod:`.stats`: the statistics a new file records.
"""

from cardlake.tables.delta_rs.engine import FILE_COLUMN, LOCK_FILE, STAGING_DIR, DeltaRsEngine
from cardlake.tables.delta_rs.log import (
    HIVE_NULL_PARTITION,
    FileEntry,
    Snapshot,
    file_entries,
    folders_agree_with_log,
    local_dir,
    read_snapshot,
    refuse_unreadable,
    refuse_unsupported,
)
from cardlake.tables.delta_rs.schema import spark_schema
from cardlake.tables.delta_rs.stats import stats_columns

__all__ = [
    "FILE_COLUMN",
    "HIVE_NULL_PARTITION",
    "LOCK_FILE",
    "STAGING_DIR",
    "DeltaRsEngine",
    "FileEntry",
    "Snapshot",
    "file_entries",
    "folders_agree_with_log",
    "local_dir",
    "read_snapshot",
    "refuse_unreadable",
    "refuse_unsupported",
    "spark_schema",
    "stats_columns",
]
