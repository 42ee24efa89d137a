"""The delta-rs engine, a package so that it can be split by concern; names as before the move."""

from cardlake.tables.delta_rs.engine import (
    FILE_COLUMN,
    HIVE_NULL_PARTITION,
    LOCK_FILE,
    STAGING_DIR,
    DeltaRsEngine,
    _file_entries,
    _folders_agree_with_log,
    _local_dir,
    _refuse_unsupported,
    _Snapshot,
    _spark_schema,
    stats_columns,
)

# The private helpers are for the catalog, until the package gives it a public log reader.
__all__ = [
    "FILE_COLUMN",
    "HIVE_NULL_PARTITION",
    "LOCK_FILE",
    "STAGING_DIR",
    "DeltaRsEngine",
    "_Snapshot",
    "_file_entries",
    "_folders_agree_with_log",
    "_local_dir",
    "_refuse_unsupported",
    "_spark_schema",
    "stats_columns",
]
