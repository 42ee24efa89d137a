"""The Delta table layer: one interface (:class:`Tables`), two engines behind it.

Jobs never call an engine directly::

    tables = Tables.from_config(spark, cfg)
    tables.replace_partitions("gold.kpi_monthly", kpi_df, partitions={"month": "2025-06"})
    tables.read("silver.customers")
"""

from cardlake.tables.base import (
    ConcurrentModificationError,
    ConstraintViolationError,
    DeltaEngine,
    Idempotency,
    SchemaMismatchError,
    TableError,
    TableNotFoundError,
    UnsupportedTableFeatureError,
    WriteResult,
)
from cardlake.tables.layer import Changes, Tables, choose_engine

__all__ = [
    "Changes",
    "ConcurrentModificationError",
    "ConstraintViolationError",
    "DeltaEngine",
    "Idempotency",
    "SchemaMismatchError",
    "TableError",
    "TableNotFoundError",
    "Tables",
    "UnsupportedTableFeatureError",
    "WriteResult",
    "choose_engine",
]
