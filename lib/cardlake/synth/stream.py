"""Stream mode: one month's transactions replayed as card events, to files or to Kafka.

Each event carries its event time, a unique ``event_id`` and the wall time it was sent
(``sent_ms``); cards travel as tokens (``tok_`` + HMAC-SHA256 of the card number, the same
token bronze computes), never as numbers. The truth (is it fraud, its true probability) stays
out of the event: :func:`write_truth` puts it in the truth folder, keyed by ``event_id``.

Two sinks share one event source: :func:`stream` writes small JSON-lines files that a file
stream reads (the embedded default), :func:`publish` sends to a Kafka topic keyed by card with
confluent-kafka's idempotent producer (librdkafka: batching, retries without duplicates, wheels
on PyPI; kafka-python is pure Python and several times slower at these rates).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardlake.synth import vocab as V
from cardlake.synth.params import SynthParams
from cardlake.synth.transactions import N_CARD_CHANNELS, simulate_month
from cardlake.synth.world import build_world

TOKEN_PREFIX = "tok_"
_SEPARATORS = re.compile(r"[ -]")
# What a malformed event looks like on the wire, and why the job must quarantine it.
MALFORMED_KINDS = (
    "not json",
    "missing event_id",
    "invalid amount",
    "invalid event_time",
    "missing instrument_id",
)


def card_token(value: str, key: bytes) -> str:
    """``tok_`` + hex HMAC-SHA256(key, card digits): bronze's token for the same card."""
    digits = _SEPARATORS.sub("", value)
    plain = digits if digits.isdigit() else value
    return TOKEN_PREFIX + hmac.new(key, plain.encode(), hashlib.sha256).hexdigest()


def dev_token_key() -> bytes:
    """The documented development key bronze uses where ``allow_dev_key`` is set."""
    from cardlake.bronze.contracts import DEV_TOKEN_KEY

    return DEV_TOKEN_KEY.encode()


@dataclass
class Event:
    """One message: the key (card token) and either a well-formed payload or raw bad text."""

    key: str
    payload: dict[str, Any] | None
    raw: str | None = None
    truth: dict[str, Any] = field(default_factory=dict)

    def encode(self, sent_ms: int) -> bytes:
        if self.payload is None:
            return (self.raw or "").encode()
        return json.dumps({**self.payload, "sent_ms": sent_ms}, separators=(",", ":")).encode()


def events(
    params: SynthParams,
    *,
    max_events: int,
    month: str | None = None,
    token_key: bytes | None = None,
    malformed_every: int = 0,
    duplicate_every: int = 0,
    repeat: bool = False,
) -> Iterator[Event]:
    """The month's transactions as events, in time order, with injected defects.

    Args:
        params: generator parameters (the seed fixes the events).
        max_events: well-formed events to yield (duplicates and malformed ones come on top).
        month: ``YYYY-MM`` to replay; the last month of the history by default.
        token_key: the card-token key (bronze's); the development key by default.
        malformed_every: after every n-th event, one malformed message (0: none).
        duplicate_every: after every n-th event, that event again, same ``event_id`` (0: none).
        repeat: once the month is sent, send it again 31 days later (new event and transaction
            ids, ``-r<k>`` suffixes) until ``max_events``: long benchmarks at high rates.
    """
    key = token_key or dev_token_key()
    world = build_world(params)
    month = month or world.months[-1]
    batch = simulate_month(world, world.month_index(month))
    n = max_events if repeat and len(batch.ts) else min(max_events, len(batch.ts))
    countries = [*V.ALL_COUNTRIES, None]
    for i in range(n):
        cycle, j = divmod(i, len(batch.ts))
        suffix = f"-r{cycle}" if cycle else ""
        shifted = batch.ts[j] + cycle * 31 * 86_400
        ts_text = str(np.datetime64(int(shifted), "s"))
        is_card = bool(batch.channel[j] < N_CARD_CHANNELS)
        merchant = int(batch.merchant[j])
        instrument = (
            card_token(str(batch.card[j]), key)
            if is_card
            else world.wallet_id[int(batch.person[j])]
        )
        event_id = f"EV-{month.replace('-', '')}-{j:08d}{suffix}"
        payload = {
            "event_id": event_id,
            "event_time": f"{ts_text}Z",
            "transaction_id": f"{batch.tx_id[j]}{suffix}",
            "instrument_type": "card" if is_card else "wallet",
            "instrument_id": instrument,
            "amount": round(float(batch.amount[j]), 2),
            "currency": V.CURRENCIES[int(batch.currency[j])],
            "merchant_id": world.merchants.merchant_id[merchant] if merchant >= 0 else None,
            "mcc": V.MCCS[int(batch.mcc[j])][0] if batch.mcc[j] >= 0 else None,
            "merchant_country": countries[int(batch.m_country[j])],
            "channel": V.CHANNELS[int(batch.channel[j])],
            "direction": ("debit", "credit")[int(batch.direction[j])],
            "state": V.STATES[int(batch.state[j])],
            "device_id": str(batch.device[j]) or None,
            "ip_country": countries[int(batch.ip_country[j])],
        }
        truth = {
            "event_id": event_id,
            "transaction_id": payload["transaction_id"],
            "is_fraud": bool(batch.is_fraud[j]),
            "fraud_probability": float(batch.fraud_p[j]),
        }
        event = Event(key=instrument, payload=payload, truth=truth)
        yield event
        if duplicate_every and (i + 1) % duplicate_every == 0:
            yield Event(key=instrument, payload=dict(payload))
        if malformed_every and (i + 1) % malformed_every == 0:
            yield _malformed(payload, (i // malformed_every) % len(MALFORMED_KINDS))


def _malformed(good: dict[str, Any], kind: int) -> Event:
    bad = {**good, "event_id": f"{good['event_id']}-BAD"}
    name = MALFORMED_KINDS[kind]
    if name == "not json":
        raw = "{" + json.dumps(bad)[1:-8]  # cut short: not a JSON object any more
    else:
        if name == "missing event_id":
            bad.pop("event_id")
        elif name == "invalid amount":
            bad["amount"] = "12,50 EUR"
        elif name == "invalid event_time":
            bad["event_time"] = "yesterday at noon"
        else:
            bad.pop("instrument_id")
        raw = json.dumps(bad, separators=(",", ":"))
    return Event(key=str(good["instrument_id"]), payload=None, raw=raw, truth={"malformed": name})


@dataclass
class StreamSummary:
    """What a stream run sent."""

    events: int
    files: int
    seconds: float
    month: str
    truth: list[dict[str, Any]] = field(default_factory=list, repr=False)


def _pace(t0: float, sent: int, rate: float, stop_at: float) -> None:
    if rate > 0:
        due = t0 + sent / rate
        time.sleep(max(0.0, min(due - time.monotonic(), stop_at - time.monotonic())))


def stream(
    *,
    landing_dir: str | Path,
    params: SynthParams,
    rate_per_second: float,
    max_events: int,
    max_seconds: float = 60.0,
    month: str | None = None,
    events_per_file: int = 50,
    token_key: bytes | None = None,
    malformed_every: int = 0,
    duplicate_every: int = 0,
) -> StreamSummary:
    """Writes the events as JSON-lines files, paced to ``rate_per_second``.

    Each file is written under a dot-prefixed name and renamed into place, so a file-stream
    reader never sees a partial file.

    Args:
        landing_dir: folder the event files go into (the job reads ``<landing_root>/events``).
        params: generator parameters (the seed fixes the events).
        rate_per_second: target messages per second; 0 or less writes as fast as possible.
        max_events: stop after this many well-formed events.
        max_seconds: stop after this much wall time, whatever the count.
        month: ``YYYY-MM`` month to replay; defaults to the last month of the history.
        events_per_file: messages per file (smaller files, lower latency).
        token_key, malformed_every, duplicate_every: as :func:`events`.

    Returns:
        Counts, elapsed time and the truth rows of the events sent.
    """
    if max_events < 0 or events_per_file < 1:
        raise ValueError("max_events must be >= 0 and events_per_file >= 1")
    out = Path(landing_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = events(
        params,
        max_events=max_events,
        month=month,
        token_key=token_key,
        malformed_every=malformed_every,
        duplicate_every=duplicate_every,
    )
    t0 = time.monotonic()
    stop_at = t0 + max_seconds
    sent = files = messages = 0
    truth: list[dict[str, Any]] = []
    chunk: list[Event] = []
    month_seen = month or ""
    done = False
    while not done and time.monotonic() < stop_at:
        chunk = []
        for event in source:
            chunk.append(event)
            if len(chunk) == events_per_file:
                break
        done = len(chunk) < events_per_file
        if not chunk:
            break
        now_ms = int(time.time() * 1000)
        lines = [e.encode(now_ms).decode() for e in chunk]
        if not month_seen and chunk[0].payload is not None:
            month_seen = str(chunk[0].payload["event_time"])[:7]
        name = f"events-{month_seen}-{files:06d}.jsonl"
        tmp = out / f".{name}.tmp"
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, out / name)
        truth.extend(e.truth for e in chunk if e.truth)
        sent += sum(e.payload is not None and bool(e.truth) for e in chunk)
        files += 1
        messages += len(chunk)
        _pace(t0, messages, rate_per_second, stop_at)
    return StreamSummary(
        events=sent, files=files, seconds=time.monotonic() - t0, month=month_seen, truth=truth
    )


def publish(
    *,
    bootstrap: str,
    topic: str,
    params: SynthParams,
    rate_per_second: float,
    max_events: int,
    max_seconds: float = 60.0,
    month: str | None = None,
    token_key: bytes | None = None,
    malformed_every: int = 0,
    duplicate_every: int = 0,
    flush_timeout_s: float = 60.0,
    repeat: bool = False,
) -> StreamSummary:
    """Sends the events to ``topic`` keyed by card token, paced to ``rate_per_second``.

    The producer is idempotent (``acks=all``, ``enable.idempotence``): a broker restart while
    it runs makes it retry, never write a message twice.

    Raises:
        RuntimeError: messages still undelivered after ``flush_timeout_s`` (count in message).
    """
    from confluent_kafka import Producer

    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": int(flush_timeout_s * 1000) + 60_000,
            "log_level": 3,
        }
    )
    source = events(
        params,
        max_events=max_events,
        month=month,
        token_key=token_key,
        malformed_every=malformed_every,
        duplicate_every=duplicate_every,
        repeat=repeat,
    )
    t0 = time.monotonic()
    stop_at = t0 + max_seconds
    sent = messages = 0
    truth: list[dict[str, Any]] = []
    month_seen = month or ""
    for event in source:
        if time.monotonic() >= stop_at:
            break
        value = event.encode(int(time.time() * 1000))
        while True:
            try:
                producer.produce(
                    topic, key=event.key.encode(), value=value, on_delivery=on_delivery
                )
                break
            except BufferError:  # local queue full (a broker restart): let it drain
                producer.poll(0.1)
        producer.poll(0)
        messages += 1
        if event.payload is not None and event.truth:
            sent += 1
            month_seen = month_seen or str(event.payload["event_time"])[:7]
        if event.truth:
            truth.append(event.truth)
        _pace(t0, messages, rate_per_second, stop_at)
    left = producer.flush(flush_timeout_s)
    if left or failures:
        raise RuntimeError(
            f"kafka producer: {left} messages undelivered, "
            f"{len(failures)} failed (first: {failures[:1]})"
        )
    return StreamSummary(
        events=sent, files=0, seconds=time.monotonic() - t0, month=month_seen, truth=truth
    )


def write_truth(truth_root: str | Path, summary: StreamSummary, *, name: str = "events") -> Path:
    """Writes the sent events' truth (``event_id``, is fraud, true probability) as Parquet."""
    import pandas as pd

    rows = [t for t in summary.truth if "event_id" in t]
    path = Path(truth_root) / "stream" / f"{name}-{summary.month or 'unknown'}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        rows, columns=["event_id", "transaction_id", "is_fraud", "fraud_probability"]
    ).to_parquet(path, index=False)
    return path


def params_of(synth: SynthParams | Mapping[str, Any]) -> SynthParams:
    """The generator parameters from a config's ``synth`` (a mapping, or already parameters)."""
    return synth if isinstance(synth, SynthParams) else SynthParams(**dict(synth))
