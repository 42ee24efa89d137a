"""Parsing card events: every message comes out well-formed or with the reason it is not."""

from __future__ import annotations

import json

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cardlake.stream.events import masked, quarantine_rows, with_parsed_events
from cardlake.stream.velocity import retained

GOOD = {
    "event_id": "E1",
    "event_time": "2025-06-01T10:00:00Z",
    "sent_ms": 1,
    "transaction_id": "T1",
    "instrument_id": "tok_ab",
    "amount": 12.5,
    "currency": "EUR",
}


def _msg(**changes: object) -> str:
    body = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...})


def test_each_message_is_well_formed_or_has_its_reason(spark: SparkSession) -> None:
    cases = [
        (_msg(), None),
        (_msg(event_id=...), "missing event_id"),
        (_msg(amount="12,50 EUR"), "invalid amount"),
        (_msg(event_time="yesterday at noon"), "invalid event_time"),
        (_msg(instrument_id=...), "missing instrument_id"),
        (_msg()[:-9], "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        ("", "not a JSON object"),
        (None, "not a JSON object"),
    ]
    df = spark.createDataFrame(
        [(i, v) for i, (v, _) in enumerate(cases)], "source string, value string"
    )
    got = {
        int(r["source"]): r["reason"]
        for r in with_parsed_events(
            df.selectExpr(
                "cast(source as string) source", "value", "cast(null as timestamp) broker_time"
            )
        ).collect()
    }
    assert got == {i: reason for i, (_, reason) in enumerate(cases)}


def test_quarantine_keeps_the_raw_text_with_card_numbers_masked(spark: SparkSession) -> None:
    raw = '{"event_id":"E9","instrument_id":"4111 1111 1111 1111","amount":"x"}'
    df = spark.createDataFrame([("f1", raw)], "source string, value string").selectExpr(
        "source", "value", "cast(null as timestamp) broker_time"
    )
    row = quarantine_rows(with_parsed_events(df)).collect()[0]
    assert row["reason"] == "missing event_time"
    assert "4111 1111" not in row["raw_value"] and row["raw_value"].endswith(
        '"instrument_id":"************1111","amount":"x"}'
    )
    texts = spark.createDataFrame(
        [
            ("card 5555555555554444 ok",),
            ("EV-202506-00000049",),
            ("TX20250600000049",),
            ("5555-5555-5555-4444",),
        ],
        "t string",
    )
    assert [r[0] for r in texts.select(masked(F.col("t"))).collect()] == [
        "card ************4444 ok",
        "EV-202506-00000049",
        "TX20250600000049",
        "************4444",
    ]


def test_state_keeps_what_backward_features_can_still_need() -> None:
    ts = pd.to_datetime(
        ["2025-01-01", "2025-03-01", "2025-05-30", "2025-06-01", "2025-06-02"], utc=True
    )
    history = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t3", "t4", "t5"],
            "instrument_id": ["c1", "c2", "c1", "c1", "c1"],
            "device_id": ["d1", None, "d1", "d2", None],
            "ts": ts,
        }
    )
    kept = retained(history, retain_days=30)
    # t1: first use of d1; t2: the last event of card c2; t3..t5: within 30 days of the newest.
    assert list(kept["transaction_id"]) == ["t1", "t2", "t3", "t4", "t5"]
    later = pd.concat(
        [
            history,
            pd.DataFrame(
                {
                    "transaction_id": ["t6"],
                    "instrument_id": ["c1"],
                    "device_id": ["d1"],
                    "ts": pd.to_datetime(["2025-08-01"], utc=True),
                }
            ),
        ]
    )
    assert list(retained(later, retain_days=30)["transaction_id"]) == ["t1", "t2", "t4", "t6"]
