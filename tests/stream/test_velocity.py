"""The velocity state function on its own: what it emits and what it keeps, without Spark."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa

from cardlake.stream.velocity import OUTPUT_SCHEMA, STATE_KEY, velocity_state_fn

DAY_MS = 86_400_000


class _State:
    """The part of Spark's ``GroupState`` the function uses."""

    def __init__(self, blob: bytes | None = None) -> None:
        self.blob = blob
        self.hasTimedOut = False
        self.timeout_ms: int | None = None

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


def _events(*rows: tuple[str, str, str | None, str]) -> pd.DataFrame:
    """Events as Spark hands them over: (transaction, card, device, event time), naive UTC."""
    names = [f.name for f in OUTPUT_SCHEMA.fields if f.name != "is_new"]
    records: list[dict[str, Any]] = []
    for tx, card, device, ts in rows:
        record: dict[str, Any] = dict.fromkeys(names)
        when = pd.Timestamp(ts)
        record.update(
            {
                STATE_KEY: "CK1",
                "transaction_id": tx,
                "customer_key": "CK1",
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


def _run(state: _State, events: pd.DataFrame) -> pd.DataFrame:
    update = velocity_state_fn(retain_days=30)
    return pd.concat(list(update(("CK1",), iter([events]), state)), ignore_index=True)


def _kept(state: _State) -> list[str]:
    assert state.blob is not None
    table = pa.ipc.open_stream(pa.py_buffer(state.blob)).read_all()
    return [str(x) for x in table.column("transaction_id").to_pylist()]


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
    assert (
        state.timeout_ms
        == int(pd.Timestamp("2025-05-30 10:00", tz="UTC").value // 1_000_000) + 30 * DAY_MS
    )

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


def test_a_customer_without_events_for_the_retention_is_forgotten() -> None:
    state = _State(blob=b"unused")
    state.hasTimedOut = True
    assert _run_empty(state) == []
    assert state.blob is None


def _run_empty(state: _State) -> list[pd.DataFrame]:
    update = velocity_state_fn(retain_days=30)
    return list(update(("CK1",), iter([]), state))
