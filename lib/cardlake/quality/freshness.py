"""Freshness per landing source: how far its newest ingested data trails the lake's newest.

"Fresh" is measured against the data, not the wall clock: the synthetic history lies in the
past, and a lake rebuilt today from old drops is no staler than it was. From
``_ops.ingest_manifest`` (files ``ingested`` with at least one accepted row; the manifest is
bronze's commit point), each delivery has a *data date*:

- a daily source (one file a day, the day in its name, ``card_tx_2025-06-30.csv``): that day;
- a monthly source (one drop per month partition): the last day of its month.

The *reference date* is the newest data date of any source. A daily source's age is the days
from its newest data date to the reference date (allowed: ``max_age_days``). A monthly source
is due the newest month the reference date has completed (the reference date's month when it
is that month's last day, else the month before), and its age is the months between that due
month and its newest month (allowed: ``max_age_months``, 0 by default: every complete month
delivered). A source with no data at all fails its not-null check.

Each source is a suite ``freshness.<source>`` over one row (``source``, ``cadence``,
``newest_month``, ``newest_date``, ``reference_date``, ``age``, in days or months), recorded
in ``_ops.dq_results`` like every suite: ``where suite_name = 'freshness.fx_rates'``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from cardlake.months import month_end, month_index
from cardlake.quality.expectations import (
    DEFAULT_PANDAS_MAX_ROWS,
    Check,
    ValidationOutcome,
    validator,
)
from cardlake.quality.layers import record

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from cardlake.tables import Tables

MANIFEST = "_ops.ingest_manifest"
SUITE_PREFIX = "freshness"
_DAY_IN_NAME = r"(\d{4}-\d{2}-\d{2})[^/]*$"


@dataclass(frozen=True)
class FreshnessConfig:
    """``freshness:`` of ``conf/bronze.yaml``: which sources deliver daily, how stale is stale."""

    daily_sources: tuple[str, ...] = ()
    max_age_days: int = 1
    max_age_months: int = 0

    def __post_init__(self) -> None:
        if self.max_age_days < 0 or self.max_age_months < 0:
            raise ValueError("freshness: max_age_days and max_age_months must be >= 0")

    def cadence(self, source: str) -> str:
        return "daily" if source in self.daily_sources else "monthly"

    def max_age(self, source: str) -> int:
        return self.max_age_days if source in self.daily_sources else self.max_age_months


def freshness_frame(
    manifest_df: DataFrame, *, sources: Sequence[str], settings: FreshnessConfig
) -> DataFrame:
    """One row per source in ``sources``: its newest data, the reference date and its age."""
    spark = manifest_df.sparkSession
    wanted = spark.createDataFrame(
        [(s, settings.cadence(s)) for s in sources], "source string, cadence string"
    )
    month_last_day = month_end(F.col("month"))
    named_day = F.to_date(F.nullif(F.regexp_extract("path", _DAY_IN_NAME, 1), F.lit("")))
    delivered = (
        manifest_df.where((F.col("status") == "ingested") & (F.col("rows_accepted") > 0))
        .join(wanted, on="source", how="inner")
        .withColumn(
            "data_date",
            F.when(F.col("cadence") == "daily", F.coalesce(named_day, month_last_day)).otherwise(
                month_last_day
            ),
        )
        .groupBy("source")
        .agg(F.max("month").alias("newest_month"), F.max("data_date").alias("newest_date"))
    )
    reference = delivered.agg(F.max("newest_date").alias("reference_date"))
    due_month = F.date_format(F.add_months(F.date_add("reference_date", 1), -1), "yyyy-MM")
    months_behind = month_index(F.col("due_month")) - month_index(F.col("newest_month"))

    return (
        wanted.join(delivered, on="source", how="left")
        .crossJoin(reference)
        .withColumn("due_month", due_month)
        .withColumn(
            "age",
            F.when(F.col("newest_date").isNull(), F.lit(None))
            .when(F.col("cadence") == "daily", F.datediff("reference_date", "newest_date"))
            .otherwise(F.greatest(F.lit(0), months_behind)),
        )
        .select(
            "source",
            "cadence",
            "newest_month",
            "newest_date",
            "reference_date",
            "due_month",
            F.col("age").cast("int").alias("age"),
        )
    )


def run_freshness(
    tables: Tables,
    *,
    sources: Sequence[str],
    settings: FreshnessConfig,
    data_docs_dir: str | None = None,
    pandas_max_rows: int | None = DEFAULT_PANDAS_MAX_ROWS,
) -> list[ValidationOutcome]:
    """Checks each source's freshness as suite ``freshness.<source>``; records the results.

    Returns:
        The outcomes (none when nothing was ingested yet); a stale source is a critical
        failure, left to the caller to raise.
    """
    if not tables.exists(MANIFEST):
        return []
    # One row per source, computed once: each suite below would otherwise read the manifest
    # again (twice on the driver engine: a count and the rows).
    frame = freshness_frame(
        tables.read(MANIFEST), sources=sources, settings=settings
    ).localCheckpoint(eager=True)
    rows: Mapping[str, DataFrame] = {s: frame.where(F.col("source") == s) for s in sources}
    checker = validator(data_docs_dir=data_docs_dir, pandas_max_rows=pandas_max_rows)
    outcomes = []
    try:
        for source, df in rows.items():
            checks = [
                Check("ExpectColumnValuesToNotBeNull", {"column": "newest_date"}),
                Check(
                    "ExpectColumnValuesToBeBetween",
                    {
                        "column": "age",
                        "min_value": 0,
                        "max_value": settings.max_age(source),
                        "notes": f"{settings.cadence(source)} source: age in "
                        f"{'days' if settings.cadence(source) == 'daily' else 'months'}",
                    },
                ),
            ]
            outcomes.append(checker.validate(df, f"{SUITE_PREFIX}.{source}", checks))
    finally:
        checker.build_docs()
        record(tables, outcomes, batch_prefix=SUITE_PREFIX)
    return outcomes
