"""Fraud stream latency: event sent to alert committed, p50/p95/p99, at several rates.

    python bench/bench_stream.py [--rates 100,250,500,1000] [--seconds 30]

One broker (Kafka from its Maven jars, on a free port), one small lake with a champion model
(``tests/stream/mini_lake.py``), one streaming job (``jobs/stream.py``, Kafka source, micro-batch
trigger as fast as possible); the producer sends at each rate in turn, with a pause between.
The job appends, per micro-batch, the time its Delta commits finished and each event's latency
from the moment the producer sent it (``sent_ms``) to that commit. A rate is sustained when the
latency of its last third is not above twice that of its first third (a backlog grows without
bound otherwise). Spark 4.1's real-time mode is not measured: it takes stateless queries with a
Kafka or foreach sink, and this query deduplicates, keeps state and commits Delta per batch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "lib"))


def _build_lake(root: Path, key: bytes) -> None:
    from tests.stream.mini_lake import build_mini_lake, mini_config

    from cardlake.spark import build_session

    if (root / "lake" / "silver" / "transactions").is_dir():
        return
    spark = build_session(mini_config(root))
    build_mini_lake(spark, root, token_key=key)
    spark.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="100,250,500,1000")
    parser.add_argument("--seconds", type=float, default=30.0, help="sending time per rate")
    parser.add_argument("--pause", type=float, default=15.0, help="drain time between rates")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "cardlake-bench"))
    parser.add_argument("--driver-memory", default="2g")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    from tests.stream.mini_lake import mini_config

    from cardlake.bronze.contracts import load_bronze_config
    from cardlake.stream.broker import create_topics, start_broker
    from cardlake.synth.stream import params_of, publish

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    key = load_bronze_config("test").token_key("test")
    _build_lake(work / "base", key)
    run = work / f"run-{int(time.time())}"
    subprocess.run(["cp", "-r", str(work / "base"), str(run)], check=True)
    broker = start_broker(run / "kafka")
    metrics = run / "metrics.jsonl"
    job = None
    try:
        create_topics(broker.bootstrap, {"card-events": 2, "fraud-alerts": 1})
        log = run / "stream.log"
        cmd = [sys.executable, str(ROOT / "jobs" / "stream.py"), "--env", "test",
               "--lake-root", str(run / "lake"), "--landing-root", str(run / "landing"),
               "--source", "kafka", "--bootstrap", broker.bootstrap, "--watermark", "3 days",
               "--metrics-path", str(metrics), "--driver-memory", args.driver_memory]
        with open(log, "ab") as out:
            job = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, env={**os.environ,
                                                                "PYTHONPATH": str(ROOT)})
        # Warm up: a few events until the first batch commits (JVM, model, first plan).
        params = params_of(mini_config(run).synth)
        publish(bootstrap=broker.bootstrap, topic="card-events", params=params,
                rate_per_second=50, max_events=50, token_key=key)
        deadline = time.monotonic() + 900
        while not metrics.exists() and time.monotonic() < deadline:
            if job.poll() is not None:
                raise SystemExit(f"stream job exited: {log.read_text()[-3000:]}")
            time.sleep(1)
        time.sleep(args.pause)
        phases = []
        for rate in rates:
            start = time.time()
            publish(bootstrap=broker.bootstrap, topic="card-events", params=params,
                    rate_per_second=rate, max_events=int(rate * args.seconds) + 1,
                    max_seconds=args.seconds, token_key=key, repeat=True)
            phases.append((rate, start, time.time()))
            time.sleep(args.pause)
        rows = [json.loads(x) for x in metrics.read_text().splitlines()]
    finally:
        if job is not None and job.poll() is None:
            os.killpg(job.pid, signal.SIGTERM)
            try:
                job.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
        broker.stop()
    sent_lat = [(r["committed"] - lat, lat) for r in rows for lat in r["latencies"]]
    lines = []
    best = 0.0
    for rate, start, end in phases:
        lat = np.array([lat for sent, lat in sorted(sent_lat) if start <= sent <= end])
        if not len(lat):
            lines.append(f"{rate:8.0f}/s  no events measured")
            continue
        third = max(1, len(lat) // 3)
        sustained = float(np.median(lat[-third:])) <= 2 * float(np.median(lat[:third])) + 0.5
        if sustained:
            best = max(best, len(lat) / (end - start))
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        achieved = len(lat) / (end - start)
        lines.append(f"{rate:8.0f}/s  {len(lat):6d} events  achieved {achieved:7.1f}/s"
                     f"  p50 {p50:6.2f} s  p95 {p95:6.2f} s  p99 {p99:6.2f} s  "
                     f"{'sustained' if sustained else 'backlog grows'}")
    print("\ncommand: python bench/bench_stream.py --rates", args.rates, "--seconds",
          f"{args.seconds:g}")
    print("micro-batch (trigger as fast as possible), event sent -> alert committed:")
    print("\n".join(lines))
    print(f"highest sustained rate measured: {best:.0f} events/s")
    print("real-time mode: not applicable (stateful query with Delta foreachBatch sinks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
