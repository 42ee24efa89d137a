"""Stream mode: transaction events written as small JSON-lines files at a chosen rate."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardlake.synth import vocab as V
from cardlake.synth.params import SynthParams
from cardlake.synth.transactions import N_CARD_CHANNELS, simulate_month
from cardlake.synth.world import build_world


@dataclass
class StreamSummary:
    """What a stream run wrote."""

    events: int
    files: int
    seconds: float
    month: str


def stream(
    *,
    landing_dir: str | Path,
    params: SynthParams,
    rate_per_second: float,
    max_events: int,
    max_seconds: float = 60.0,
    month: str | None = None,
    events_per_file: int = 50,
) -> StreamSummary:
    """Replay one month's transactions as event files, paced to ``rate_per_second``.

    Each file is written under a dot-prefixed name and renamed into place, so a file-stream
    reader never sees a partial file. The events are the same transactions (same ids) the
    daily batch of that month carries, so ``transactions_truth`` labels them.

    Args:
        landing_dir: folder the event files go into (the job uses ``<landing_root>/events``).
        params: generator parameters (the seed fixes the events).
        rate_per_second: target events per second; 0 or less writes as fast as possible.
        max_events: stop after this many events.
        max_seconds: stop after this much wall time, whatever the count.
        month: ``YYYY-MM`` month to replay; defaults to the last month of the history.
        events_per_file: events per file (smaller files, lower latency).

    Returns:
        Counts and elapsed time.
    """
    if max_events < 0 or events_per_file < 1:
        raise ValueError("max_events must be >= 0 and events_per_file >= 1")
    world = build_world(params)
    month = month or world.months[-1]
    batch = simulate_month(world, world.month_index(month))
    out = Path(landing_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = min(max_events, len(batch.ts))
    ts = np.datetime_as_string(batch.ts.astype("datetime64[s]"), unit="s")
    countries = [*V.ALL_COUNTRIES, None]
    t0 = time.monotonic()
    written = files = 0
    while written < n and time.monotonic() - t0 < max_seconds:
        chunk = range(written, min(n, written + events_per_file))
        lines = []
        for j in chunk:
            is_card = bool(batch.channel[j] < N_CARD_CHANNELS)
            merchant = int(batch.merchant[j])
            lines.append(json.dumps({
                "event_id": f"EV-{month.replace('-', '')}-{j:08d}",
                "event_time": str(ts[j]),
                "transaction_id": str(batch.tx_id[j]),
                "instrument_type": "card" if is_card else "wallet",
                "instrument_id": str(batch.card[j]) if is_card
                else world.wallet_id[int(batch.person[j])],
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
            }, separators=(",", ":")))
        name = f"events-{month}-{files:06d}.jsonl"
        tmp = out / f".{name}.tmp"
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, out / name)
        written += len(lines)
        files += 1
        if rate_per_second > 0:
            due = t0 + written / rate_per_second
            time.sleep(max(0.0, min(due - time.monotonic(), t0 + max_seconds - time.monotonic())))
    return StreamSummary(events=written, files=files, seconds=time.monotonic() - t0, month=month)
