"""The analysts' stage run for one month (``run(..., month=...)``) on a copy of the pipeline's
lake (``built_lake``, built with every month at once) gives the full build's rows for that month
and leaves every other month's files alone.

The note topics (``gold.service_note_topics``) are compared too: a month run trains the topic
model as the full run does and scores only the month's notes. The quality gate is left out of
the run (the rows are compared to the full build's, which passed it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cardlake.analytics import clv, job
from cardlake.ml import text
from cardlake.pipeline import settings_for
from cardlake.tables import Tables
from tests.lake_fixture import BuiltLake, copy_lake

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MONTHLY = (*(f"gold.{name}" for name in job.TABLES), text.OUTPUT_TABLE)
CURRENT = (f"gold.{job.CUSTOMER_360}", clv.OUTPUT_TABLE)  # one row per customer, no partitions
DIGITS = 6
RUN_ID = "model_run_id"  # names the MLflow run that wrote the rows: another run, another id


def comparable(df: DataFrame) -> DataFrame:
    """Doubles to ``DIGITS`` decimals (a month's sums add the same values in another order),
    maps as sorted entries (Spark neither sorts nor compares maps), no run id."""
    return df.drop(RUN_ID).select(
        [
            F.round(f.name, DIGITS).alias(f.name)
            if isinstance(f.dataType, T.DoubleType)
            else F.array_sort(F.map_entries(f.name)).alias(f.name)
            if isinstance(f.dataType, T.MapType)
            else F.col(f.name)
            for f in df.schema.fields
            if f.name != RUN_ID
        ]
    )


@dataclass(frozen=True)
class MonthRun:
    full: Tables  # the built lake, as the full build left it (read only)
    after: Tables  # its copy, after the month's run
    month: str
    versions: dict[str, int]  # each table's version in the copy before the month's run


@pytest.fixture(scope="module")
def month_run(
    spark: SparkSession, built_lake: BuiltLake, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MonthRun]:
    full = built_lake.tables(spark)
    copy = copy_lake(built_lake, Path(tmp_path_factory.mktemp("analytics_month")))
    after = copy.tables(spark)
    found = after.read("gold.customer_monthly_features").agg(F.max("month")).first()
    assert found is not None and found[0] is not None
    versions = {name: after.version(name) for name in (*MONTHLY, *CURRENT)}
    cfg = dataclasses.replace(
        copy.cfg, quality=dataclasses.replace(copy.cfg.quality, stage_checks=False)
    )
    previous = mlflow.get_tracking_uri()
    job.run(after, settings_for(cfg), month=found[0])
    yield MonthRun(full=full, after=after, month=found[0], versions=versions)
    mlflow.set_tracking_uri(previous)


@pytest.mark.parametrize("name", MONTHLY)
def test_a_month_run_gives_the_full_builds_rows_for_the_month(month_run: MonthRun, name: str):
    partition = {"month": [month_run.month]}
    expected = month_run.full.read(name, partitions=partition)
    assert expected.count() > 0, f"{name} has no rows for {month_run.month} in the built lake"
    assert_df_equality(
        comparable(month_run.after.read(name, partitions=partition)),
        comparable(expected),
        ignore_row_order=True,
        ignore_nullable=True,
    )


@pytest.mark.parametrize("name", MONTHLY)
def test_a_month_run_rewrites_no_other_month(month_run: MonthRun, name: str):
    # From the commit log: every file added or removed since is in the month's partition.
    changes = month_run.after.changes_since(name, month_run.versions[name])
    assert (changes.whole_table, changes.partitions) == (False, [{"month": month_run.month}])
    others = F.col("month") != F.lit(month_run.month)
    assert_df_equality(
        comparable(month_run.after.read(name).where(others)),
        comparable(month_run.full.read(name).where(others)),
        ignore_row_order=True,
        ignore_nullable=True,
    )


@pytest.mark.parametrize("name", CURRENT)
def test_a_run_of_the_latest_month_gives_the_full_builds_current_view(
    month_run: MonthRun, name: str
):
    assert month_run.after.version(name) > month_run.versions[name]  # it did run
    assert_df_equality(
        comparable(month_run.after.read(name)),
        comparable(month_run.full.read(name)),
        ignore_row_order=True,
        ignore_nullable=True,
    )
