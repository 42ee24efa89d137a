"""Fraud stream latency: event sent to alert committed, p50/p95/p99, at several rates.

    python bench/bench_stream.py [--rates 100,250,500] [--seconds 20] [--pause 10]

One broker (Kafka from its Maven jars, on a free port), one small lake with a champion model
(``tests/stream/mini_lake.py``), one streaming job (``jobs/stream.py``, Kafka source, micro-batch
trigger as fast as possible); the producer sends at each rate in turn, with a pause between.
The job appends, per micro-batch, the time its Delta commits finished and each event's latency
from the moment the producer sent it (``sent_ms``) to that commit. A rate is sustained when the
latency of its last third is not above twice that of its first third (a backlog grows without
bound otherwise), over at least ``MIN_BATCHES`` micro-batches (one batch holding a whole rate
says nothing about the next). Spark 4.1's real-time mode is not measured: in 4.1 it runs
stateless queries only (projections, filters, unions, stream-static joins; update output mode;
Kafka or foreach sinks), and this query deduplicates within a watermark, keeps per-customer state
(``applyInPandasWithState``) and commits Delta per batch through ``foreachBatch``. Whole run,
bounded: the lake build (first run only, kept in ``--workdir``), the job's start (at most
``--start-timeout``), then per rate ``--seconds`` of sending and ``--pause`` of draining, and at
most ``--drain`` for the backlog (8 min 48 s with the defaults on two cores at load 16 to 18,
the lake build's 2.5 min included). Before them: the median seconds of each phase of a
micro-batch (the sink's own: state, champion, features, plan, score, commit, publish; and
Spark's ``durationMs`` of the query), and the job's CPU seconds with the machine's load, since
on a shared machine the latencies say as much about the neighbours as about the job. The last
lines are the command and the highest sustained rate.
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
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MIN_BATCHES = 3
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "lib"))


def _build_lake(root: Path, key: bytes) -> None:
    from tests.stream.mini_lake import build_mini_lake, mini_config

    from cardlake.spark import build_logged_session

    if (root / "lake" / "silver" / "transactions").is_dir():
        return
    spark = build_logged_session(mini_config(root), command="bench-stream")
    build_mini_lake(spark, root, token_key=key)
    spark.stop()


class _Sender:
    """One run of events across all phases: ids and event times never repeat between rates
    (re-sending a month would be dropped as duplicates by the job's deduplication)."""

    def __init__(self, bootstrap: str, topic: str, params: Any, key: bytes) -> None:
        from confluent_kafka import Producer

        from cardlake.synth.stream import events

        self.topic = topic
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "log_level": 3,
            }
        )
        self.source = events(params, max_events=10**9, token_key=key, repeat=True)
        self.sent = 0

    def send(self, rate: float, seconds: float) -> None:
        t0 = time.monotonic()
        n = int(rate * seconds)
        for i, event in enumerate(self.source):
            self.producer.produce(
                self.topic, key=event.key.encode(), value=event.encode(int(time.time() * 1000))
            )
            self.producer.poll(0)
            self.sent += 1
            if i + 1 >= n:
                break
            time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
        if self.producer.flush(60):
            raise SystemExit("bench: the broker did not acknowledge every event")


def _committed(metrics: Path) -> list[dict[str, Any]]:
    if not metrics.exists():
        return []
    lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    return [r for r in lines if "latencies" in r]  # the others are Spark's progress reports


def _events(batch: dict[str, Any]) -> int:
    """Events a batch committed: ``latencies`` holds at most the job's ``max_literal_ids``."""
    return int(batch.get("events", len(batch["latencies"])))


def _session_cpu(sid: int) -> dict[str, float]:
    """CPU seconds (user and system, reaped children included) of every process in session
    ``sid``, by kind: the JVM, the job's Python driver (``sid`` itself), its Python workers.
    On a machine others share, latency says how busy the machine was as much as what the job
    costs; CPU time says the latter."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = {"jvm": 0.0, "driver": 0.0, "workers": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, rest = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()
        if int(fields[3]) == sid:  # fields after the command: state, ppid, pgrp, session, ...
            if name.endswith("(java"):
                kind = "jvm"
            else:
                kind = "driver" if int(entry.name) == sid else "workers"
            total[kind] += sum(int(x) for x in fields[11:15]) / ticks  # utime, stime, cutime...
    return total


# JVM threads by what they do, from their names (the first match counts).
_JVM_THREADS = (
    ("tasks", ("Executor task",)),
    ("JIT", ("C1 Compiler", "C2 Compiler")),
    ("GC", ("GC Thread", "G1 ", "VM Thread", "Parallel")),
    ("stream", ("stream exec",)),  # names are cut to 15 characters
    ("py4j", ("Thread-",)),  # the gateway's threads: the Python driver's calls, planning
)


def _jvm_threads_cpu(sid: int) -> dict[str, float]:
    """CPU seconds of the session's JVM threads, by :data:`_JVM_THREADS` kind (``other`` for
    the rest): what a batch's JVM time is spent on, tasks, planning, compiling or collecting.
    Threads that ended are not counted (task threads are pooled, so few do)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total: dict[str, float] = {kind: 0.0 for kind, _ in _JVM_THREADS} | {"other": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, rest = (entry / "stat").read_text().rsplit(")", 1)
            tasks = list((entry / "task").iterdir()) if name.endswith("(java") else []
        except OSError:
            continue
        if int(rest.split()[3]) != sid:
            continue
        for task in tasks:
            try:
                tname, trest = (task / "stat").read_text().split(" (", 1)[1].rsplit(")", 1)
            except (OSError, IndexError):
                continue
            fields = trest.split()
            kind = next((k for k, prefixes in _JVM_THREADS if tname.startswith(prefixes)), "other")
            total[kind] += sum(int(x) for x in fields[11:13]) / ticks  # utime, stime
    return total


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _phase_lines(metrics: Path) -> list[str]:
    """Median seconds per phase of the query's micro-batches: the sink's own (state, champion,
    features, plan, score, commit, publish) and Spark's ``durationMs``."""
    if not metrics.exists():
        return []
    lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    out = []
    sink = [r["phases"] for r in lines if r.get("phases")]
    if sink:
        names = list(dict.fromkeys(k for p in sink for k in p))
        out.append(
            f"  sink, median of {len(sink)} batches: "
            + ", ".join(f"{k} {np.median([p.get(k, 0.0) for p in sink]):.2f} s" for k in names)
        )
    jobs = [r["jobs"] for r in lines if r.get("jobs")]
    if jobs:
        names = list(dict.fromkeys(k for j in jobs for k in j))
        per_phase = {k: np.median([j.get(k, [0, 0]) for j in jobs], axis=0) for k in names}
        total = np.median([np.sum(list(j.values()), axis=0) for j in jobs], axis=0)
        out.append(
            f"  Spark jobs/stages started, median of {len(jobs)} batches: "
            f"{total[0]:g}/{total[1]:g} in all; "
            + ", ".join(f"{k} {v[0]:g}/{v[1]:g}" for k, v in per_phase.items() if v.any())
        )
    for query in sorted({r["query"] for r in lines if "query" in r}):
        spark = [r["durations"] for r in lines if r.get("query") == query]
        names = list(dict.fromkeys(k for d in spark for k in d))
        out.append(
            f"  {query}, median of {len(spark)} batches: "
            + ", ".join(
                f"{k} {np.median([d.get(k, 0) for d in spark]) / 1000:.2f} s" for k in names
            )
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="100,250,500")
    parser.add_argument("--seconds", type=float, default=20.0, help="sending time per rate")
    parser.add_argument("--pause", type=float, default=10.0, help="drain time between rates")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "cardlake-bench"))
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument(
        "--drain",
        type=float,
        default=60.0,
        help="after the last rate, wait this long at most for the backlog",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=600.0,
        help="how long the job may take to commit its first batch",
    )
    parser.add_argument(
        "--job-java-options",
        default="",
        help="JVM options for the streaming job's JVM only (JAVA_TOOL_OPTIONS of its process), "
        "to try one before it goes into the job's session settings",
    )
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    from tests.stream.mini_lake import mini_config

    from cardlake.bronze.contracts import load_bronze_config
    from cardlake.stream.broker import create_topics, start_broker
    from cardlake.synth.stream import params_of

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
        cmd = [
            sys.executable,
            str(ROOT / "jobs" / "stream.py"),
            "--env",
            "test",
            "--lake-root",
            str(run / "lake"),
            "--landing-root",
            str(run / "landing"),
            "--source",
            "kafka",
            "--bootstrap",
            broker.bootstrap,
            "--watermark",
            "3 days",
            "--metrics-path",
            str(metrics),
            "--driver-memory",
            args.driver_memory,
        ]
        java_options = {"JAVA_TOOL_OPTIONS": args.job_java_options} if args.job_java_options else {}
        with open(log, "ab") as out:
            job = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={
                    **os.environ,
                    # The job's Python workers import this tree's lib too (from a worktree, not
                    # the one the environment installed).
                    "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lib")]),
                    **java_options,
                },
            )
        # Warm up: a few events until the first batch commits (JVM, model, first plan).
        sender = _Sender(broker.bootstrap, "card-events", params_of(mini_config(run).synth), key)
        sender.send(50, 1)
        deadline = time.monotonic() + args.start_timeout
        while not _committed(metrics):
            if job.poll() is not None:
                raise SystemExit(f"stream job exited: {log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"bench: no batch committed within {args.start_timeout:g} s; log {log}"
                )
            time.sleep(1)
        time.sleep(args.pause)
        cpu_start, load_start = _session_cpu(job.pid), _load()
        threads_start = _jvm_threads_cpu(job.pid)
        phases = []
        for rate in rates:
            start, before = time.time(), sender.sent
            sender.send(rate, args.seconds)
            phases.append((rate, start, time.time(), sender.sent - before))
            time.sleep(args.pause)
        drain_until = time.monotonic() + args.drain
        while (
            sum(_events(r) for r in _committed(metrics)) < sender.sent
            and time.monotonic() < drain_until
            and job.poll() is None
        ):
            time.sleep(1)
        rows = _committed(metrics)
        left = sender.sent - sum(_events(r) for r in rows)
        cpu_end = _session_cpu(job.pid)
        threads_end = _jvm_threads_cpu(job.pid)
        jvm_threads = {k: threads_end[k] - threads_start[k] for k in threads_end}
        cpu_by_kind = {k: cpu_end[k] - cpu_start[k] for k in cpu_end}
        cpu = sum(cpu_by_kind.values())
    finally:
        if job is not None and job.poll() is None:
            os.killpg(job.pid, signal.SIGTERM)
            try:
                job.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
        broker.stop()
    sent_lat = sorted(
        (r["committed"] - lat, lat, r["batch_id"]) for r in rows for lat in r["latencies"]
    )
    lines = []
    best = 0.0
    for rate, start, end, n_sent in phases:
        # sent_ms is the send time cut to the millisecond: the phase's start is cut the same
        # way, or its first event can fall before it and the rate look one event short.
        first = int(start * 1000) / 1000
        mine = [(lat, batch) for sent, lat, batch in sent_lat if first <= sent <= end]
        lat = np.array([lat for lat, _ in mine])
        batches = len({batch for _, batch in mine})
        if not len(lat):
            lines.append(f"{rate:8.0f}/s  no events measured")
            continue
        third = max(1, len(lat) // 3)
        # Every event of the rate committed, and its last third not much slower than its first.
        sustained = (
            len(lat) >= n_sent
            and batches >= MIN_BATCHES
            and (float(np.median(lat[-third:])) <= 2 * float(np.median(lat[:third])) + 0.5)
        )
        verdict = (
            "sustained"
            if sustained
            else "too few batches to tell"
            if len(lat) >= n_sent and batches < MIN_BATCHES
            else "backlog grows"
        )
        if sustained:
            best = max(best, len(lat) / (end - start))
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        achieved = len(lat) / (end - start)
        lines.append(
            f"{rate:8.0f}/s  {len(lat):6d}/{n_sent} events  achieved {achieved:7.1f}/s"
            f"  p50 {p50:6.2f} s  p95 {p95:6.2f} s  p99 {p99:6.2f} s  "
            f"{batches} batches  {verdict}"
        )
    print("\nmicro-batch (trigger as fast as possible), event sent -> alert committed:")
    print("\n".join(lines))
    print(f"events sent {sender.sent}, not committed when measuring stopped: {left}")
    print("\n".join(["per micro-batch with input:", *_phase_lines(metrics)]))
    measured = sum(n for *_, n in phases)
    n_batches = len({r["batch_id"] for r in rows if r["committed"] >= phases[0][1]})
    print(
        f"job CPU after warm-up: {cpu:.0f} s for {measured} events sent "
        f"({1000 * cpu / max(measured, 1):.1f} ms an event; {cpu / max(n_batches, 1):.1f} s a "
        f"batch over {n_batches} batches; "
        + ", ".join(f"{k} {v:.1f} s" for k, v in cpu_by_kind.items())
        + f"); machine load (1, 5, 15 min) {load_start} at the first rate, {_load()} at the end"
    )
    print(
        "JVM CPU by thread: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in jvm_threads.items())
        + " (thread names in /proc; threads that ended are not counted)"
    )
    print(
        "real-time mode: not applicable (Spark 4.1 runs stateless queries only; this one "
        "deduplicates, keeps per-customer state and writes Delta through foreachBatch)"
    )
    print(
        f"command: python bench/bench_stream.py --rates {args.rates} --seconds "
        f"{args.seconds:g} --pause {args.pause:g} --drain {args.drain:g}"
        + (f" --job-java-options='{args.job_java_options}'" if args.job_java_options else "")
    )
    print(f"highest sustained rate: {best:.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
