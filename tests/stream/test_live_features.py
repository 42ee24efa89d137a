"""The live features' silver lookups, by constant sets (a small batch) or by joins (a big one):
the same features either way, on a hand-made batch whose counts are known."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from cardlake.ml.settings import load_ml_settings
from cardlake.stream.job import Reference, batch_lookups, with_live_features
from cardlake.stream.velocity import HISTORY_SCHEMA, OUTPUT_SCHEMA, STATE_KEY

DAY = date(2025, 6, 1)


def _history_row(tx: str | None, customer: str | None, card: str, hhmm: str, usd: float) -> dict:
    hour, minute = (int(x) for x in hhmm.split(":"))
    row: dict[str, Any] = dict.fromkeys(f.name for f in HISTORY_SCHEMA.fields)
    row.update(
        transaction_id=tx,
        customer_key=customer,
        instrument_id=card,
        ts=datetime(2025, 6, 1, hour, minute),
        txn_date=DAY,
        amount_usd=usd,
        merchant_id="M1",
        channel="pos",
        direction="debit",
        state="settled",
        is_night=False,
        is_cross_border=False,
        month="2025-06",
    )
    return row


def _batch_row(key: str, history: dict, *, event_id: str | None) -> dict:
    row: dict[str, Any] = dict.fromkeys(f.name for f in OUTPUT_SCHEMA.fields)
    row.update(history)
    row.update({STATE_KEY: key, "event_id": event_id, "is_new": event_id is not None})
    if event_id is not None:
        row.update(sent_ms=1, amount=history["amount_usd"], currency="USD")
    return row


def _reference(spark: SparkSession) -> Reference:
    silver = [
        _history_row("S1", "CK1", "c1", "10:10", 1.0),
        _history_row("S2", "CK1", "c1", "10:20", 2.0),  # also in the batch, as state history
        _history_row(None, "CK1", "c1", "10:30", 4.0),  # no transaction id: counted once
        _history_row("S3", "CK2", "c1", "10:40", 8.0),  # CK2 has no new event: not looked up
        _history_row("S4", "CK1", "c1", "08:00", 16.0),  # more than an hour before
    ]
    empty = spark.createDataFrame([], "x string")
    return Reference(
        instruments=empty,
        customers=empty,
        fx=empty,
        history=spark.createDataFrame(silver, HISTORY_SCHEMA),
        reports=spark.createDataFrame([], "merchant_id string, fraud_reported_at timestamp"),
    )


def _rows(spark: SparkSession) -> DataFrame:
    rows = [
        _batch_row("CK1", _history_row("S2", "CK1", "c1", "10:20", 2.0), event_id=None),
        _batch_row("CK1", _history_row("T1", "CK1", "c1", "11:00", 32.0), event_id="E1"),
        # A card silver knows no customer for: its state key stands for the customer.
        _batch_row(
            "instrument:tok_z", _history_row("T2", None, "tok_z", "11:00", 64.0), event_id="E2"
        ),
    ]
    return spark.createDataFrame(rows, OUTPUT_SCHEMA)


def _features(spark: SparkSession, *, sets: bool) -> DataFrame:
    rows = _rows(spark)
    return with_live_features(
        rows,
        ref=_reference(spark),
        fraud=load_ml_settings("test").fraud,
        small_amount_usd=3.0,
        customers=["CK1"] if sets else None,
        transaction_ids=["S2", "T1", "T2"] if sets else None,
    ).select("event_id", "customer_key", "tx_count_1h", "amount_sum_1h", "amount_sum_24h")


def test_sets_and_joins_give_the_features_silver_and_the_batch_hold(spark: SparkSession) -> None:
    expected = spark.createDataFrame(
        [
            # S1, S2 (once) and the id-less row in the hour; S4 too in the day; not CK2's S3.
            ("E1", "CK1", 3.0, 7.0, 23.0),
            ("E2", None, 0.0, 0.0, 0.0),
        ],
        "event_id string, customer_key string, tx_count_1h double, amount_sum_1h double, "
        "amount_sum_24h double",
    )
    for sets in (True, False):
        assert_df_equality(
            _features(spark, sets=sets),
            expected,
            ignore_row_order=True,
            ignore_nullable=True,
        )


def test_the_batch_sets_are_collected_up_to_the_limit_and_null_above_it(
    spark: SparkSession,
) -> None:
    rows = _rows(spark).unionByName(
        spark.createDataFrame([("not a JSON object",)], "reason string"),
        allowMissingColumns=True,
    )
    at_limit = rows.agg(*batch_lookups(rows, max_ids=3)).first()
    assert at_limit is not None
    assert (at_limit["new"], at_limit["rejected"], at_limit["first_sent_ms"]) == (2, 1, 1)
    assert at_limit["sent_ms"] == [1, 1]
    assert at_limit["customers"] == ["CK1"]  # E2's card has no customer
    assert sorted(at_limit["transaction_ids"]) == ["S2", "T1", "T2"]
    below = rows.agg(*batch_lookups(rows, max_ids=1)).first()
    assert below is not None
    assert below["customers"] == ["CK1"]
    assert below["transaction_ids"] is None  # three ids: the sink joins instead
    assert below["sent_ms"] == [1]  # a sample for the latency log; the count stays exact
    assert below["new"] == 2
