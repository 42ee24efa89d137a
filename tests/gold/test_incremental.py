"""Gold over the whole history recomputes only the months whose silver inputs changed.

The tiny silver of tests/gold/conftest.py (three months), built once in full; then one change
at a time to silver, each followed by :func:`refresh`: which months it recomputed, that the
other months' files were not rewritten (from gold's own commit log), and that the result is
what a full build of the changed silver writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.gold import job as gold_job
from cardlake.gold.config import GoldConfig
from cardlake.gold.job import DIMENSIONS, MONTHLY_TABLES, build_gold, refresh
from cardlake.pipeline import settings_for
from cardlake.silver import job as silver_job
from cardlake.tables import Tables, watermarks
from cardlake.tables.catalog import SQL_LAYERS
from tests.gold.conftest import MONTHS
from tests.gold.test_build import GOLD, _lake
from tests.lake_fixture import BuiltLake, copy_lake

# A two-month window: a month of transactions reaches itself and the month after it.
SHORT = dataclasses.replace(GOLD, features=dataclasses.replace(GOLD.features, lookback_months=2))
GOLD_TABLES = [f"gold.{n}" for n in (*DIMENSIONS, *MONTHLY_TABLES)]


@pytest.fixture(scope="module")
def lake(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Tables, Path]]:
    from tests.gold import conftest as c

    silver = {
        "customer_snapshots": c.silver_df(spark, "customer_snapshots", c.snapshots_rows()),
        "transactions": c.silver_df(spark, "transactions", c.transactions_rows()),
        "interactions": c.silver_df(spark, "interactions", c.interactions_rows()),
        "marketing_monthly": c.silver_df(spark, "marketing_monthly", c.marketing_rows()),
        "product_usage": c.silver_df(spark, "product_usage", c.usage_rows()),
        **{n: c.silver_df(spark, n, rows) for n, rows in c.reference_rows().items()},
    }
    root = tmp_path_factory.mktemp("gold-incremental")
    tables = _lake(spark, root / "lake", silver)
    first = refresh(tables, SHORT, months=MONTHS)
    assert (first.mode, first.reason) == ("full", "first build")
    watermarks.record(tables, first)
    yield tables, root
    for layer in SQL_LAYERS:
        spark.sql(f"DROP DATABASE IF EXISTS `{layer}` CASCADE")


def _versions(tables: Tables) -> dict[str, int]:
    return {name: tables.version(name) for name in GOLD_TABLES}


def _step(tables: Tables, gcfg: GoldConfig = SHORT) -> tuple[watermarks.Plan, dict[str, int]]:
    """One refresh, recorded; returns its plan and gold's versions from before it."""
    before = _versions(tables)
    plan = refresh(tables, gcfg, months=MONTHS)
    watermarks.record(tables, plan)
    return plan, before


def _assert_rewritten(tables: Tables, before: dict[str, int], months: list[str]) -> None:
    """No monthly gold table has a changed file outside ``months`` since ``before`` (its commit
    log), and the transactions fact was rewritten in each of them (a month without rows of a
    table, e.g. no service contact in March, leaves nothing to rewrite)."""
    rewritten = {}
    for name in MONTHLY_TABLES:
        changes = tables.changes_since(f"gold.{name}", before[f"gold.{name}"])
        assert not changes.whole_table, name
        rewritten[name] = sorted((p["month"] for p in changes.partitions), key=str)
    assert rewritten["fact_transactions"] == months
    assert all(set(got) <= set(months) for got in rewritten.values()), rewritten


def _same_as_full_build(spark: SparkSession, tables: Tables, root: Path, tag: str) -> None:
    silver = {
        name: tables.read(f"silver.{name}")
        for name in (
            "customer_snapshots",
            "transactions",
            "interactions",
            "marketing_monthly",
            "product_usage",
            "merchants",
            "accounts",
            "cards",
        )
    }
    full = _lake(spark, root / f"full-{tag}", {n: df.localCheckpoint() for n, df in silver.items()})
    build_gold(full, SHORT, months=list(MONTHS), full=True)
    for name in GOLD_TABLES:
        a, b = tables.read(name), full.read(name)
        assert_approx_df_equality(
            a, b.select(*a.columns), precision=1e-9, ignore_row_order=True, ignore_nullable=True
        )


def _edit(tables: Tables, name: str, month: str, change: DataFrame) -> None:
    tables.replace_partitions(
        f"silver.{name}",
        change.localCheckpoint(),
        partitions={"month": month},
        partition_by=["month"],
    )


def test_nothing_changed_nothing_recomputed(lake: tuple[Tables, Path]) -> None:
    tables, _ = lake
    plan, before = _step(tables)
    assert (plan.mode, plan.months) == ("skip", ())
    assert _versions(tables) == before


def test_silver_rewritten_with_the_same_rows_is_no_change(lake: tuple[Tables, Path]) -> None:
    tables, _ = lake
    for name in ("transactions", "customer_snapshots", "merchants"):
        df = tables.read(f"silver.{name}").localCheckpoint()
        partition_by = ["month"] if "month" in df.columns else []
        tables.overwrite(f"silver.{name}", df, partition_by=partition_by)
    plan, before = _step(tables)
    assert (plan.mode, plan.months) == ("skip", ())
    assert _versions(tables) == before


# One change to one month of silver, and the months of gold it must recompute.
EDITS = {
    # T4, C1's FX payment in March, was 200.0: corrected to 250.0. March only.
    "a changed last month recomputes that month only": (
        "transactions",
        "2024-03",
        lambda df: df.withColumn(
            "amount_usd",
            F.when(F.col("transaction_id") == "T4", 250.0).otherwise(F.col("amount_usd")),
        ),
        ["2024-03"],
    ),
    # C1's January ATM withdrawal T2 was a duplicate: with a two-month window, January's
    # features and February's change; March's window starts in February.
    "a january transaction reaches the window after it": (
        "transactions",
        "2024-01",
        lambda df: df.where(F.col("transaction_id") != "T2"),
        ["2024-01", "2024-02"],
    ),
    # C2 moved city in February: a type-2 version of dim_customer that March's facts point at.
    "a snapshot change reaches every later month": (
        "customer_snapshots",
        "2024-02",
        lambda df: df.withColumn(
            "city", F.when(F.col("city") == "Berlin", "Hamburg").otherwise(F.col("city"))
        ),
        ["2024-02", "2024-03"],
    ),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_a_changed_month_recomputes_the_months_it_reaches(
    spark: SparkSession, lake: tuple[Tables, Path], case: str
) -> None:
    tables, root = lake
    name, month, edit, expected = EDITS[case]
    _edit(tables, name, month, edit(tables.read(f"silver.{name}", partitions={"month": [month]})))
    plan, before = _step(tables)
    assert (plan.mode, list(plan.months)) == ("months", expected), plan.reason
    _assert_rewritten(tables, before, expected)
    _same_as_full_build(spark, tables, root, f"{name}-{month}")


def test_a_reference_table_or_a_new_recipe_rebuilds_everything(
    spark: SparkSession, lake: tuple[Tables, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tables, root = lake
    merchants = tables.read("silver.merchants").localCheckpoint()
    tables.overwrite("silver.merchants", merchants.withColumn("city", F.lit("Leeds")))
    plan, _ = _step(tables)
    assert plan.mode == "full"
    assert plan.reason == "silver.merchants: its rows changed"
    _same_as_full_build(spark, tables, root, "merchants")

    # The rebuilds of a new recipe: what refresh plans and asks of build_gold, not the builds
    # themselves (two full builds; the full build's result is compared just above).
    builds: list[tuple[GoldConfig, tuple[str, ...], bool]] = []

    def build(
        tables: Tables, gcfg: GoldConfig, *, months: Sequence[str], full: bool, **_: object
    ) -> None:
        builds.append((gcfg, tuple(months), full))

    monkeypatch.setattr(gold_job, "build_gold", build)
    other = dataclasses.replace(
        SHORT, revenue=dataclasses.replace(SHORT.revenue, fx_margin_rate=0.01)
    )
    plan, _ = _step(tables, other)
    assert (plan.mode, plan.reason) == ("full", "its code or settings changed")
    plan, _ = _step(tables, SHORT)  # and back: the recorded recipe is the other one now
    assert plan.mode == "full"
    assert builds == [(other, MONTHS, True), (SHORT, MONTHS, True)]


@pytest.mark.integration
def test_a_second_run_of_silver_and_gold_on_the_built_lake_recomputes_nothing(
    spark: SparkSession, built_lake: BuiltLake, tmp_path: Path
) -> None:
    # What a second `make run` on the same landing files does in silver and gold.
    lake = copy_lake(built_lake, tmp_path)
    tables, settings = lake.tables(spark), settings_for(lake.cfg)
    names = [n for n in (*silver_job.TABLES, *gold_job.TABLES) if tables.exists(n)]
    before = {name: tables.version(name) for name in names}
    unchanged = "nothing recomputed: no input changed since the last build"
    assert silver_job.run(tables, settings) == unchanged
    assert gold_job.run(tables, settings, month=None) == unchanged
    assert {name: tables.version(name) for name in names} == before
