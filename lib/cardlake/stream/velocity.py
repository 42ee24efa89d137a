"""Per-customer velocity state in Spark's state store, and the live features built on it.

The state of a customer (``applyInPandasWithState``, keyed by ``customer_key``, so a new device
is new for the customer across all their cards, as in batch) is the customer's own recent
events: every event of the last ``retain_days`` plus, older than that, the first use of each
device and the last event of each card. That is exactly what the batch features
(:func:`cardlake.ml.fraud_features.with_transaction_features`) look at backwards in time, so
running that same transform over (silver's history + the state's events + the new events) gives
each new event the score batch scoring would give it.

For each micro-batch the state function emits the customer's new events (``is_new``) and the
retained history once; the sink computes the features and keeps the new rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
from pyspark.sql.types import (
    BinaryType,
    BooleanType,
    DateType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

S, DBL, TS, BOOL = StringType(), DoubleType(), TimestampType(), BooleanType()

# The columns the batch features read (silver.transactions' names), kept in the state.
HISTORY_SCHEMA = StructType([
    StructField("transaction_id", S),
    StructField("customer_key", S),
    StructField("instrument_id", S),
    StructField("ts", TS),
    StructField("txn_date", DateType()),
    StructField("amount_usd", DBL),
    StructField("merchant_id", S),
    StructField("customer_country", S),
    StructField("channel", S),
    StructField("direction", S),
    StructField("state", S),
    StructField("device_id", S),
    StructField("ip_country", S),
    StructField("is_night", BOOL),
    StructField("is_cross_border", BOOL),
    StructField("fraud_reported_at", TS),
    StructField("month", S),
])
# What only the new events carry (null on history rows).
EVENT_ONLY = StructType([
    StructField("event_id", S),
    StructField("sent_ms", LongType()),
    StructField("broker_time", TS),
    StructField("source", S),
    StructField("instrument_type", S),
    StructField("amount", DBL),
    StructField("currency", S),
    StructField("mcc", S),
    StructField("merchant_country", S),
])
STATE_KEY = "state_key"
OUTPUT_SCHEMA = StructType([StructField(STATE_KEY, S), *HISTORY_SCHEMA.fields,
                            *EVENT_ONLY.fields, StructField("is_new", BOOL)])
STATE_SCHEMA = StructType([StructField("rows", BinaryType())])
_HISTORY = [f.name for f in HISTORY_SCHEMA.fields]
_OUTPUT = [f.name for f in OUTPUT_SCHEMA.fields]
_ARROW_HISTORY = pa.schema([
    ("transaction_id", pa.string()), ("customer_key", pa.string()),
    ("instrument_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
    ("txn_date", pa.date32()), ("amount_usd", pa.float64()), ("merchant_id", pa.string()),
    ("customer_country", pa.string()), ("channel", pa.string()), ("direction", pa.string()),
    ("state", pa.string()), ("device_id", pa.string()), ("ip_country", pa.string()),
    ("is_night", pa.bool_()), ("is_cross_border", pa.bool_()),
    ("fraud_reported_at", pa.timestamp("us", tz="UTC")), ("month", pa.string()),
])


def _to_bytes(df: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(df[_HISTORY], schema=_ARROW_HISTORY, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _from_bytes(blob: bytes) -> pd.DataFrame:
    table = pa.ipc.open_stream(pa.py_buffer(blob)).read_all()
    return table.to_pandas(types_mapper=None, date_as_object=True)


def retained(history: pd.DataFrame, *, retain_days: int) -> pd.DataFrame:
    """The rows the batch features can still need once newer events arrive.

    Every row of the last ``retain_days`` (the 30-day windows and all shorter ones), the first
    use of each device (is it a new device?) and each card's last row (time since previous).
    """
    if history.empty:
        return history
    ts = pd.to_datetime(history["ts"], utc=True)
    ordered = history.assign(_ts=ts).sort_values(["_ts", "transaction_id"], kind="stable")
    ordered = ordered.reset_index(drop=True)
    recent = ordered["_ts"] >= ordered["_ts"].max() - pd.Timedelta(days=retain_days)
    first_device = ordered["device_id"].notna() & ~ordered.duplicated(["device_id"], keep="first")
    last_card = ~ordered.duplicated(["instrument_id"], keep="last")
    keep = ordered[recent | first_device | last_card]
    return keep.drop(columns="_ts").reset_index(drop=True)


def velocity_state_fn(retain_days: int) -> Any:
    """The ``applyInPandasWithState`` function: emits new events and history, keeps history."""
    from pyspark.sql.streaming.state import GroupState

    def update(key: tuple[Any, ...], pdfs: Iterator[pd.DataFrame], state: GroupState
               ) -> Iterator[pd.DataFrame]:
        if state.hasTimedOut:  # no event for retain_days of event time: forget the customer
            state.remove()
            return
        new = pd.concat(list(pdfs), ignore_index=True)
        history = _from_bytes(state.get[0]) if state.exists else pd.DataFrame(columns=_HISTORY)
        out_new = new.assign(is_new=True)
        out_hist = history.assign(is_new=False, **{STATE_KEY: key[0]})
        for name in (f.name for f in EVENT_ONLY.fields):
            out_hist[name] = None
        out = pd.concat([out_hist[_OUTPUT], out_new[_OUTPUT]], ignore_index=True)
        yield out
        both = pd.concat([history[_HISTORY], new[_HISTORY]], ignore_index=True)
        keep = retained(both, retain_days=retain_days)
        state.update((_to_bytes(keep),))
        newest_ms = int(pd.to_datetime(keep["ts"], utc=True).max().value // 1_000_000)
        state.setTimeoutTimestamp(newest_ms + retain_days * 86_400_000)

    return update
