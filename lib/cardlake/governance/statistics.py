"""What a lake table may copy into its Delta log: file statistics of unclassified data only.

Delta records each data file's minimum and maximum per column in the log (``add.stats``), which
VACUUM never removes and which anyone who can list the table reads. A personal column's extremes
there (the alphabetically first e-mail, the oldest date of birth) are personal data outside the
rows. So a table is created with ``delta.dataSkippingStatsColumns`` listing only the columns
``conf/governance.yaml`` classifies ``none`` (fail closed: a column classified nowhere gets no
statistics), and both engines honour that property on every later write and compaction.

The same policy gives each new column its dictionary entry as Delta column metadata: the
description (and rule) as the column's comment, the classification under
``cardlake.classification``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pyspark.sql.types import (
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegralType,
    StringType,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from cardlake.governance.settings import GovernanceSettings
from cardlake.tables.layer import TablePolicy

STATS_COLUMNS = "delta.dataSkippingStatsColumns"
NUM_INDEXED = "delta.dataSkippingNumIndexedCols"
CLASSIFICATION_KEY = "cardlake.classification"
# Types Delta keeps minimum and maximum for (booleans, binaries and nested types have none).
_ELIGIBLE = (
    StringType,
    IntegralType,
    DecimalType,
    DoubleType,
    FloatType,
    DateType,
    TimestampType,
    TimestampNTZType,
)
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def statistics_columns(
    governance: GovernanceSettings, table: str, schema: StructType, partition_by: Sequence[str] = ()
) -> list[str]:
    """The columns of ``table`` whose file statistics may be kept: classified ``none``."""
    kept = []
    for f in schema.fields:
        if f.name in partition_by or not isinstance(f.dataType, _ELIGIBLE):
            continue
        rule = governance.rule(table, f.name)
        if rule is not None and rule.classification == "none":
            kept.append(f.name)
    return kept


def statistics_properties(
    governance: GovernanceSettings, table: str, schema: StructType, partition_by: Sequence[str] = ()
) -> dict[str, str]:
    """The table properties that keep every other column out of the log's statistics."""
    kept = statistics_columns(governance, table, schema, partition_by)
    if not kept:  # an empty list would mean "unset" (the first 32 columns) to a reader
        return {NUM_INDEXED: "0"}
    return {STATS_COLUMNS: ",".join(n if _PLAIN.fullmatch(n) else f"`{n}`" for n in kept)}


def column_metadata(governance: GovernanceSettings, table: str, column: str) -> dict[str, str]:
    """A column's Delta metadata: its description as the column comment, and classification."""
    rule = governance.rule(table, column)
    if rule is None:
        return {}
    comment = rule.description if not rule.rule else f"{rule.description} (rule: {rule.rule})"
    return {"comment": comment, CLASSIFICATION_KEY: rule.classification}


def table_policy(governance: GovernanceSettings) -> TablePolicy:
    """For :class:`cardlake.tables.Tables`: properties and column metadata of each new table."""

    def properties(table: str, schema: StructType, partition_by: tuple[str, ...]) -> dict[str, str]:
        return statistics_properties(governance, table, schema, partition_by)

    def metadata(table: str, column: str) -> dict[str, str]:
        return column_metadata(governance, table, column)

    return TablePolicy(properties=properties, column_metadata=metadata)
