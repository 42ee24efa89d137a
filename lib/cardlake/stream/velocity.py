"""Per-customer velocity state in Spark's state store, and the live features built on it.

The state of a customer (per ``customer_key``, so a new device is new for the customer across
all their cards, as in batch) is the customer's own recent events: every event of the last
``retain_days`` plus, older than that, the first use of each device and the last event of each
card. That is exactly what the batch features
(:func:`cardlake.ml.fraud_features.with_transaction_features`) look at backwards in time, so
running that same transform over (silver's history + the state's events + the new events) gives
each new event the score batch scoring would give it.

Spark's state store (``applyInPandasWithState``) keeps it by bucket of customers
(:func:`state_bucket`), each bucket's state holding its customers' rows. For each micro-batch the
state function emits each customer's new events (``is_new``) and their retained history once;
the sink computes the features and keeps the new rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
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
HISTORY_SCHEMA = StructType(
    [
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
    ]
)
# What only the new events carry (null on history rows).
EVENT_ONLY = StructType(
    [
        StructField("event_id", S),
        StructField("sent_ms", LongType()),
        StructField("broker_time", TS),
        StructField("source", S),
        StructField("instrument_type", S),
        StructField("amount", DBL),
        StructField("currency", S),
        StructField("mcc", S),
        StructField("merchant_country", S),
    ]
)
STATE_KEY = "state_key"
STATE_BUCKET = "state_bucket"
OUTPUT_SCHEMA = StructType(
    [
        StructField(STATE_KEY, S),
        *HISTORY_SCHEMA.fields,
        *EVENT_ONLY.fields,
        StructField("is_new", BOOL),
    ]
)
STATE_SCHEMA = StructType([StructField("rows", BinaryType())])
_HISTORY = [f.name for f in HISTORY_SCHEMA.fields]
# The same schemas in Arrow: the history's output rows, the events as they come in (the
# output's columns but ``is_new``).
_ARROW_EVENT_ONLY = to_arrow_schema(EVENT_ONLY)
_ARROW_EVENTS = to_arrow_schema(StructType(OUTPUT_SCHEMA.fields[:-1]))
# A bucket's state: each customer's retained rows (the state key, then the history's columns),
# with the bucket count it was kept for in the schema's metadata.
_STATE_COLUMNS = [STATE_KEY, *_HISTORY]
_ARROW_STATE = to_arrow_schema(StructType([StructField(STATE_KEY, S), *HISTORY_SCHEMA.fields]))
_BUCKETS_META = b"cardlake.state_buckets"
_DAY_US = 86_400_000_000


def _to_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _from_bytes(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all()


def kept_positions(
    ts_us: Sequence[int],
    transaction_ids: Sequence[Any],
    device_ids: Sequence[Any],
    instrument_ids: Sequence[Any],
    *,
    retain_days: int,
) -> list[int]:
    """Positions of the rows :func:`retained` keeps, in (event time, transaction id) order.

    Plain Python over a customer's few dozen rows: a state function runs once per customer
    and micro-batch, and pandas' fixed cost per call (sort, two ``duplicated``) was 12 ms a
    customer, 4 s of a 350-customer batch.
    """
    order = sorted(range(len(ts_us)), key=lambda i: (ts_us[i], transaction_ids[i]))
    if not order:
        return []
    since = ts_us[order[-1]] - retain_days * _DAY_US
    keep = [ts_us[i] >= since for i in order]
    devices: set[Any] = set()
    for pos, i in enumerate(order):  # the first use of each device
        if device_ids[i] is not None and device_ids[i] not in devices:
            devices.add(device_ids[i])
            keep[pos] = True
    cards: set[Any] = set()
    for pos in range(len(order) - 1, -1, -1):  # the last row of each card
        card = instrument_ids[order[pos]]
        if card not in cards:
            cards.add(card)
            keep[pos] = True
    return [i for pos, i in enumerate(order) if keep[pos]]


def retained(history: pd.DataFrame, *, retain_days: int) -> pd.DataFrame:
    """The rows the batch features can still need once newer events arrive.

    Every row of the last ``retain_days`` (the 30-day windows and all shorter ones), the first
    use of each device (is it a new device?) and each card's last row (time since previous).
    """
    ts = pd.to_datetime(history["ts"], utc=True).dt.as_unit("us").astype("int64")
    positions = kept_positions(
        ts.tolist(),
        history["transaction_id"].tolist(),
        _nullable(history["device_id"]),
        history["instrument_id"].tolist(),
        retain_days=retain_days,
    )
    return history.iloc[positions].reset_index(drop=True)


def _nullable(values: pd.Series) -> list[Any]:
    return [None if pd.isna(v) else v for v in values.tolist()]


def state_bucket(key: Column, buckets: int) -> Column:
    """The state bucket of a state key, ``0 .. buckets - 1``: the key the state store groups by."""
    return F.pmod(F.xxhash64(key), F.lit(buckets)).cast("int")


def _retained_state(
    rows: pa.Table, *, retain_days: int, watermark_ms: int, live: set[Any]
) -> tuple[pa.Table, int | None]:
    """A bucket's rows its customers still need (:func:`kept_positions`, customer by customer),
    and the earliest event time (ms) at which one of them is forgotten.

    A customer whose newest event is ``retain_days`` older than the watermark and who has no
    event in ``live`` (this micro-batch's) is forgotten: what a timeout did to the customer's
    own state when each customer had one.
    """
    keys = rows.column(STATE_KEY).to_pylist()
    ts = rows.column("ts").cast(pa.int64()).to_pylist()
    transaction_ids = rows.column("transaction_id").to_pylist()
    device_ids = rows.column("device_id").to_pylist()
    instrument_ids = rows.column("instrument_id").to_pylist()
    by_key: dict[Any, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    retain_ms = retain_days * _DAY_US // 1000
    positions: list[int] = []
    forget_at: int | None = None
    for k, idx in by_key.items():
        expires = max(ts[i] for i in idx) // 1000 + retain_ms
        if k not in live and expires < watermark_ms:
            continue
        kept = kept_positions(
            [ts[i] for i in idx],
            [transaction_ids[i] for i in idx],
            [device_ids[i] for i in idx],
            [instrument_ids[i] for i in idx],
            retain_days=retain_days,
        )
        positions += [idx[j] for j in kept]
        forget_at = expires if forget_at is None else min(forget_at, expires)
    return rows.take(pa.array(positions, type=pa.int64())), forget_at


def _history_output(history: pa.Table) -> pa.Table:
    """The state's rows in the output's columns: no event-only values, not new."""
    n = history.num_rows
    columns = {STATE_KEY: history.column(STATE_KEY)}
    columns.update({name: history.column(name) for name in _HISTORY})
    columns.update({f.name: pa.nulls(n, f.type) for f in _ARROW_EVENT_ONLY})
    columns["is_new"] = pa.array([False] * n, type=pa.bool_())
    return pa.table(columns)


def velocity_state_fn(retain_days: int, buckets: int) -> Any:
    """The ``applyInPandasWithState`` function over one state bucket (:func:`state_bucket` of
    ``buckets``): emits each customer's new events and, for the customers with one, their
    history; keeps each customer's history in the bucket's state.

    One call per bucket rather than per customer: a call's fixed cost (pandas and Arrow
    conversions of every column, each way) was ~3.5 ms, a second of CPU per 300 customers of a
    micro-batch, where a bucket's rows go through once. The price: a micro-batch rewrites the
    whole state of each bucket it touches, its quiet customers' too; ``buckets`` bounds that.
    The bucket count is written into each state and checked, since a changed count would put
    a customer's new events in a bucket without their history.
    """
    from pyspark.sql.streaming.state import GroupState

    marker = {_BUCKETS_META: str(buckets).encode()}
    empty = _ARROW_STATE.with_metadata(marker).empty_table()

    def update(
        key: tuple[Any, ...], pdfs: Iterator[pd.DataFrame], state: GroupState
    ) -> Iterator[pd.DataFrame]:
        history = _from_bytes(state.get[0]) if state.exists else empty
        if (
            state.exists
            and (history.schema.metadata or {}).get(_BUCKETS_META) != marker[_BUCKETS_META]
        ):
            raise ValueError(
                f"velocity state of bucket {key[0]} was kept for another bucket count than "
                f"{buckets} (or per customer): start the stream on a new checkpoint"
            )
        frames = [f for f in pdfs if len(f)]
        live: set[Any] = set()
        events_history = empty
        if frames:
            new = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
            # One frame out per bucket, put together in Arrow: every frame yielded costs a
            # pandas-to-Arrow conversion of all its columns on the way back to Spark.
            events = pa.Table.from_pandas(
                new, schema=_ARROW_EVENTS, preserve_index=False
            ).replace_schema_metadata(None)
            new_keys = pc.unique(events.column(STATE_KEY))
            live = set(new_keys.to_pylist())
            out = events.append_column(
                "is_new", pa.array([True] * events.num_rows, type=pa.bool_())
            )
            if history.num_rows:
                theirs = history.filter(pc.is_in(history.column(STATE_KEY), value_set=new_keys))
                out = pa.concat_tables([_history_output(theirs), out])
            yield out.to_pandas(date_as_object=True)
            events_history = events.select(_STATE_COLUMNS).replace_schema_metadata(marker)
        keep, forget_at = _retained_state(
            pa.concat_tables([history, events_history]),
            retain_days=retain_days,
            watermark_ms=state.getCurrentWatermarkMs(),
            live=live,
        )
        if forget_at is None:  # every customer of the bucket forgotten
            state.remove()
            return
        state.update((_to_bytes(keep),))
        state.setTimeoutTimestamp(max(forget_at, state.getCurrentWatermarkMs()))

    return update
