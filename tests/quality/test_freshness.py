"""Freshness per source, measured against the newest data any source delivered."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession

from cardlake.quality.freshness import FreshnessConfig, freshness_frame, run_freshness
from cardlake.quality.layers import DQ_RESULTS
from cardlake.tables import Tables

SCHEMA = "source string, month string, path string, status string, rows_accepted long"
SETTINGS = FreshnessConfig(daily_sources=("card_transactions",), max_age_days=1, max_age_months=0)
SOURCES = ["card_transactions", "fx_rates", "merchants"]


def _manifest(spark: SparkSession, card_days: list[str], fx_months: list[str]):
    rows = [
        (
            "card_transactions",
            day[:7],
            f"card_transactions/{day[:7]}/card_tx_{day}.csv",
            "ingested",
            10,
        )
        for day in card_days
    ]
    rows += [("fx_rates", m, f"fx_rates/{m}/fx_rates_{m}.csv", "ingested", 5) for m in fx_months]
    rows += [
        ("fx_rates", "2025-07", "fx_rates/2025-07/fx_rates_2025-07.csv", "failed", 0),
        ("merchants", "2025-06", "merchants/2025-06/merchants_2025-06.csv", "ingested", 0),
    ]
    return spark.createDataFrame(rows, SCHEMA)


def test_ages_by_cadence(spark: SparkSession) -> None:
    manifest = _manifest(spark, ["2025-05-31", "2025-06-27", "2025-06-30"], ["2025-05"])
    got = {
        r["source"]: (r["cadence"], r["newest_date"], r["age"])
        for r in freshness_frame(manifest, sources=SOURCES, settings=SETTINGS).collect()
    }
    # The reference is 2025-06-30 (the card feed's newest day, also June's end): fx_rates,
    # monthly, is due June and has only May (its failed July file does not count); merchants'
    # June file accepted no row, so merchants has no data at all.
    assert got == {
        "card_transactions": ("daily", dt.date(2025, 6, 30), 0),
        "fx_rates": ("monthly", dt.date(2025, 5, 31), 1),
        "merchants": ("monthly", None, None),
    }


def test_a_monthly_source_is_not_due_before_its_month_ends(spark: SparkSession) -> None:
    manifest = _manifest(spark, ["2025-06-30", "2025-07-03"], ["2025-06"])
    got = {
        r["source"]: r["age"]
        for r in freshness_frame(manifest, sources=SOURCES[:2], settings=SETTINGS).collect()
    }
    assert got == {"card_transactions": 0, "fx_rates": 0}  # July is not complete on the 3rd


def test_fresh_sources_pass_and_a_stale_one_fails_by_name(
    spark: SparkSession, rs_tables: Tables
) -> None:
    rs_tables.overwrite(
        "_ops.ingest_manifest", _manifest(spark, ["2025-06-20", "2025-06-30"], ["2025-06"])
    )
    outcomes = run_freshness(rs_tables, sources=SOURCES[:2], settings=SETTINGS)
    assert [(o.suite_name, o.success) for o in outcomes] == [
        ("freshness.card_transactions", True),
        ("freshness.fx_rates", True),
    ]

    rs_tables.overwrite(
        "_ops.ingest_manifest",  # the card feed stopped on the 20th
        _manifest(spark, ["2025-06-20"], ["2025-06"]),
    )
    outcomes = run_freshness(rs_tables, sources=SOURCES[:2], settings=SETTINGS)
    assert [(o.suite_name, o.success) for o in outcomes] == [
        ("freshness.card_transactions", False),
        ("freshness.fx_rates", True),
    ]
    (failure,) = outcomes[0].critical_failures
    assert failure.check.kwargs["column"] == "age"
    assert '"partial_unexpected_list": [10]' in failure.observed  # 20 June to 30 June
    stored = (
        rs_tables.read(DQ_RESULTS)
        .where("suite_name = 'freshness.card_transactions' AND NOT success")
        .count()
    )
    assert stored == 1
