"""The velocity state function on its own: what it emits and what it keeps, without Spark.

The function runs once per bucket of customers; these buckets hold one or two customers."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from cardlake.stream.velocity import OUTPUT_SCHEMA, STATE_KEY, velocity_state_fn

DAY_MS = 86_400_000
BUCKETS = 4


class _State:
    """The part of Spark's ``GroupState`` the function uses."""

    def __init__(self, blob: bytes | None = None, *, watermark: str | None = None) -> None:
        self.blob = blob
        self.hasTimedOut = False
        self.timeout_ms: int | None = None
        self.watermark_ms = _ms(watermark) if watermark else 0

    def getCurrentWatermarkMs(self) -> int:
        return self.watermark_ms

    @property
    def exists(self) -> bool:
        return self.blob is not None

    @property
    def get(self) -> tuple[bytes | None]:
        return (self.blob,)

    def update(self, value: tuple[bytes]) -> None:
        self.blob = value[0]

    def setTimeoutTimestamp(self, ms: int) -> None:
        self.timeout_ms = ms

    def remove(self) -> None:
        self.blob = None


def _ms(ts: str) -> int:
    return int(pd.Timestamp(ts, tz="UTC").value // 1_000_000)


def _events(*rows: tuple[str, str, str | None, str], customer: str = "CK1") -> pd.DataFrame:
    """A customer's events as Spark hands them over: (transaction, card, device, event time),
    naive UTC."""
    names = [f.name for f in OUTPUT_SCHEMA.fields if f.name != "is_new"]
    records: list[dict[str, Any]] = []
    for tx, card, device, ts in rows:
        record: dict[str, Any] = dict.fromkeys(names)
        when = pd.Timestamp(ts)
        record.update(
            {
                STATE_KEY: customer,
                "transaction_id": tx,
                "customer_key": customer,
                "instrument_id": card,
                "ts": when,
                "txn_date": when.date(),
                "amount_usd": 10.0,
                "device_id": device,
                "is_night": False,
                "is_cross_border": False,
                "month": ts[:7],
                "event_id": f"E{tx}",
                "sent_ms": 1,
                "amount": 10.0,
            }
        )
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=names)
    return frame.astype(
        {
            "ts": "datetime64[us]",
            "fraud_reported_at": "datetime64[us]",
            "broker_time": "datetime64[us]",
        }
    )


def _run(state: _State, *events: pd.DataFrame, buckets: int = BUCKETS) -> pd.DataFrame:
    update = velocity_state_fn(retain_days=30, buckets=buckets)
    return pd.concat(list(update((1,), iter(events), state)), ignore_index=True)


def _kept(state: _State) -> list[str]:
    assert state.blob is not None
    table = pa.ipc.open_stream(pa.py_buffer(state.blob)).read_all()
    return [str(x) for x in table.column("transaction_id").to_pylist()]


def _kept_by_customer(state: _State) -> dict[str, list[str]]:
    assert state.blob is not None
    table = pa.ipc.open_stream(pa.py_buffer(state.blob)).read_all()
    kept: dict[str, list[str]] = {}
    for key, tx in zip(
        table.column(STATE_KEY).to_pylist(), table.column("transaction_id").to_pylist(), strict=True
    ):
        kept.setdefault(str(key), []).append(str(tx))
    return kept


def test_a_customer_s_events_come_out_new_then_as_history_and_the_state_keeps_what_counts() -> None:
    state = _State()
    first = _run(
        state,
        _events(
            ("t1", "c1", "d1", "2025-01-01 10:00"),
            ("t2", "c2", None, "2025-03-01 10:00"),
            ("t3", "c1", None, "2025-05-30 10:00"),
        ),
    )
    assert list(first["transaction_id"]) == ["t1", "t2", "t3"]
    assert list(first["is_new"]) == [True, True, True]
    assert list(first["event_id"]) == ["Et1", "Et2", "Et3"]
    # t1 is d1's first use, t2 card c2's last event, t3 within 30 days of the newest.
    assert _kept(state) == ["t1", "t2", "t3"]
    assert state.timeout_ms == _ms("2025-05-30 10:00") + 30 * DAY_MS

    second = _run(state, _events(("t4", "c1", "d2", "2025-08-01 09:00")))
    old = second[~second["is_new"]]
    assert sorted(old["transaction_id"]) == ["t1", "t2", "t3"]
    assert set(old[STATE_KEY]) == {"CK1"}
    assert old["event_id"].isna().all() and old["sent_ms"].isna().all()
    assert list(old.sort_values("transaction_id")["txn_date"]) == [
        date(2025, 1, 1),
        date(2025, 3, 1),
        date(2025, 5, 30),
    ]
    assert list(second.loc[second["is_new"], "transaction_id"]) == ["t4"]
    assert [f.name for f in OUTPUT_SCHEMA.fields] == list(second.columns)
    # t3 is now older than 30 days and no longer card c1's last event (t4 is): forgotten.
    assert _kept(state) == ["t1", "t2", "t4"]


def test_a_bucket_emits_history_only_for_customers_with_new_events_and_keeps_the_others() -> None:
    state = _State()
    _run(
        state,
        _events(("a1", "ca", "d1", "2025-01-01 10:00")),
        _events(("b1", "cb", "d9", "2025-01-02 10:00"), customer="CK2"),
    )
    second = _run(state, _events(("a2", "ca", None, "2025-01-03 10:00")))
    assert sorted(
        zip(second[STATE_KEY], second["transaction_id"], second["is_new"], strict=True)
    ) == [
        ("CK1", "a1", False),
        ("CK1", "a2", True),
    ]
    assert _kept_by_customer(state) == {"CK1": ["a1", "a2"], "CK2": ["b1"]}
    assert state.timeout_ms == _ms("2025-01-02 10:00") + 30 * DAY_MS  # CK2's is the earliest


def test_a_quiet_customer_past_the_retention_is_forgotten_and_the_others_kept() -> None:
    state = _State()
    _run(
        state,
        _events(("a1", "ca", "d1", "2025-01-01 10:00")),
        _events(("b1", "cb", "d9", "2025-01-20 10:00"), customer="CK2"),
        _events(("c1", "cc", None, "2025-01-05 10:00"), customer="CK3"),
    )
    # The watermark is past CK1's and CK3's newest plus 30 days: CK3 has a new event (kept, its
    # old row too, the card's last), CK1 none (forgotten); CK2 is within its 30 days.
    state.watermark_ms = _ms("2025-02-10 00:00")
    third = _run(state, _events(("c2", "cd", None, "2025-02-12 10:00"), customer="CK3"))
    assert sorted(third["transaction_id"]) == ["c1", "c2"]
    assert _kept_by_customer(state) == {"CK2": ["b1"], "CK3": ["c1", "c2"]}
    assert state.timeout_ms == _ms("2025-01-20 10:00") + 30 * DAY_MS


def test_a_bucket_whose_customers_are_all_past_the_retention_is_removed() -> None:
    state = _State()
    _run(state, _events(("a1", "ca", "d1", "2025-01-01 10:00")))
    state.hasTimedOut = True
    state.watermark_ms = _ms("2025-02-01 00:00")
    update = velocity_state_fn(retain_days=30, buckets=BUCKETS)
    assert list(update((1,), iter([]), state)) == []
    assert state.blob is None


def test_a_state_kept_for_another_bucket_count_is_refused() -> None:
    state = _State()
    _run(state, _events(("a1", "ca", "d1", "2025-01-01 10:00")))
    with pytest.raises(ValueError, match="bucket count"):
        _run(state, _events(("a2", "ca", "d1", "2025-01-02 10:00")), buckets=BUCKETS * 2)
