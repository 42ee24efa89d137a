"""The fraud stream end to end, on a real broker and a small lake with a champion model.

- core: 2,000 events with malformed ones and duplicates go through Kafka to one streaming job
  (duplicates within a micro-batch, and the first batch's newest events sent again after it
  committed); every well-formed event is scored exactly once, every malformed one is in the
  quarantine, and the alerts are exactly what batch scoring of the same events with the same
  model gives, in the table and once each on the alerts topic;
- crash: the same events while the broker restarts under the producer and the streaming process
  is killed with SIGKILL after its first commit and started again from its checkpoint: the
  same checks, the topic at least once;
- embedded (``heavy``: ``make test-heavy``): the default source (event files, no broker), same
  job, same checks; one more job start for what the core test already covers;
- champion swap: no job.

Both Kafka tests run in ``make test``. Each streaming job costs a JVM start, the model load and
its first micro-batch (one and a half to three minutes on a loaded two-core machine); the core
test runs one job, two micro-batches; the crash test two jobs, three batches in all. Two runs on
2026-12-05, two cores shared with other jobs (mini lake and broker, core, crash, champion swap):
at load 11 to 16, 70 s, 180 s, 360 s, 8 s, 10.5 minutes without the heavy test; at load 12 to
26, 150 s, 360 s, 440 s, 8 s, and 300 s for the heavy test, 21 minutes in all. Before: 21 to 24
minutes at load 12 to 36, core 5 minutes and crash 9 at load 11 to 19. Kafka's jars come
from ``.ci/setup.d/30-kafka.sh`` (the broker fixture skips, saying so, where they cannot be
resolved); Spark's Kafka connector from Maven Central at the first job's start, like Delta's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.stream.broker import Broker, BrokerError, create_topics, kafka_libs, start_broker
from cardlake.synth.stream import events as synth_events
from cardlake.synth.stream import publish, stream
from tests.stream.mini_lake import MiniLake, mini_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 2000
MALFORMED_EVERY = 50  # 40 malformed messages
DUPLICATE_EVERY = 40  # 50 duplicates
RESENT = 5  # well-formed events sent again in a later micro-batch (the core test)
JOB_DEADLINE_S = 900.0
READ_DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker on a free port for the module; its log stays in the test's temp folder."""
    try:
        kafka_libs()  # .ci/setup.d/30-kafka.sh resolves them; so does a machine with Maven
    except BrokerError as exc:
        pytest.skip(f"no Kafka jars: {str(exc)[:300]}")
    broker = start_broker(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def base_lake(stream_mini_lake: MiniLake) -> MiniLake:
    return stream_mini_lake  # built once for this module and tests/stream/test_sink.py


def _copy(base: MiniLake, dest: Path) -> MiniLake:
    """A private copy: each test's stream writes its own tables and checkpoints."""
    shutil.copytree(base.root, dest)
    return MiniLake(cfg=mini_config(dest), root=dest)


def _token_key() -> bytes:
    from cardlake.bronze.contracts import load_bronze_config

    return load_bronze_config("test").token_key("test")


def _job(lake: MiniLake, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        str(ROOT / "jobs" / "stream.py"),
        "--env",
        "test",
        "--lake-root",
        str(lake.lake_root),
        "--landing-root",
        str(lake.root / "landing"),
        "--model-refresh-seconds",
        "3600",
        "--watermark",
        "3 days",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=ROOT
        )


def _scored_ids(lake: MiniLake) -> list[str]:
    from deltalake import DeltaTable

    path = lake.lake_root / "silver" / "card_events_scored"
    if not (path / "_delta_log").is_dir():
        return []
    try:  # the log folder exists a moment before its first commit does
        table = DeltaTable(str(path))
    except Exception:
        return []
    return [
        str(x) for x in table.to_pyarrow_table(columns=["event_id"]).column("event_id").to_pylist()
    ]


def _wait_exit(proc: subprocess.Popen[bytes], log: Path, deadline_s: float) -> None:
    try:
        code = proc.wait(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"stream job still running after {deadline_s:.0f} s; log {log}")
    assert code == 0, f"stream job exited {code}: {log.read_text(errors='replace')[-3000:]}"


def _wait_for_commit(proc: subprocess.Popen[bytes], lake: MiniLake, log: Path) -> None:
    """Returns once the job has committed scored events; fails if it exits or time is up."""
    deadline = time.monotonic() + JOB_DEADLINE_S
    while not _scored_ids(lake):
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"no commit after {JOB_DEADLINE_S:.0f} s; log {log}"
        time.sleep(0.5)


def _send(bootstrap: str, topic: str, events: list[Any]) -> None:
    """Sends the source's messages in order, keyed by card (one partition per card)."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "log_level": 3,
        }
    )
    for event in events:
        producer.produce(topic, key=event.key.encode(), value=event.encode(int(time.time() * 1000)))
        producer.poll(0)
    assert producer.flush(READ_DEADLINE_S) == 0, "the broker did not take every message"


def _batch_expected(spark: SparkSession, lake: MiniLake, good: list[str]) -> DataFrame:
    """Batch scoring of the same events: the batch features over silver plus the events as
    rows of one table, scored by the champion; independent of the stream's state and sinks."""
    from cardlake.ml import tracking
    from cardlake.ml.common import with_score
    from cardlake.ml.fraud import SMALL_AMOUNT_TAG
    from cardlake.ml.fraud_features import window_hours, with_transaction_features
    from cardlake.ml.settings import load_ml_settings
    from cardlake.stream import events as E
    from cardlake.stream.job import load_reference, with_enrichment
    from cardlake.stream.velocity import STATE_KEY

    tables = lake.tables(spark)
    ref = load_reference(tables)
    raw = spark.createDataFrame([(v, "test") for v in good], "value string, source string")
    events = raw.withColumn("broker_time", F.current_timestamp()).transform(E.with_parsed_events)
    # A card no customer is known for counts as its own customer, in batch as in the stream.
    rows = (
        with_enrichment(events, ref=ref)
        .withColumn("customer_key", F.col(STATE_KEY))
        .drop(STATE_KEY)
        .withColumn("is_new", F.lit(True))
    )
    silver = ref.history.join(
        rows.select("transaction_id"), on="transaction_id", how="left_anti"
    ).withColumn("is_new", F.lit(False))
    ml = load_ml_settings("test")
    tracker = tracking.Tracker.configure(str(lake.lake_root), ml.tracking)
    model, version = tracking.load_champion(ml.fraud.model_name)
    small_usd = float(
        tracking.version_tags(tracker, ml.fraud.model_name, version)[SMALL_AMOUNT_TAG]
    )  # the cut-off the champion learnt
    feats = with_transaction_features(
        rows.unionByName(silver, allowMissingColumns=True),
        hours=window_hours(ml.fraud),
        small_amount_usd=small_usd,
        reports_df=ref.reports,
    ).where("is_new")
    return with_score(model, feats).select("event_id", "score")


def _messages(token_key: bytes) -> tuple[list[str], list[str], int]:
    """(well-formed payloads, malformed payloads, duplicates) of the test's event source."""
    good: list[str] = []
    bad: list[str] = []
    dups = 0
    seen: set[str] = set()
    for event in synth_events(
        _params(),
        max_events=EVENTS,
        token_key=token_key,
        malformed_every=MALFORMED_EVERY,
        duplicate_every=DUPLICATE_EVERY,
    ):
        if event.payload is None:
            bad.append(event.encode(0).decode())
        elif event.payload["event_id"] in seen:
            dups += 1
        else:
            seen.add(event.payload["event_id"])
            good.append(event.encode(0).decode())
    return good, bad, dups


def _params() -> Any:
    """The mini lake's generator settings: the same cards, so the same tokens."""
    from cardlake.synth.stream import params_of

    return params_of(mini_config(Path("/nonexistent")).synth)


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(int(c) for c in reversed(digits)):
        total += d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2)
    return total % 10 == 0


def _check_outputs(spark: SparkSession, lake: MiniLake, good: list[str], bad: list[str]) -> None:
    tables = lake.tables(spark)
    good_ids = {json.loads(g)["event_id"] for g in good}
    scored = tables.read("silver.card_events_scored").select("event_id", "score", "threshold")
    ids = [r["event_id"] for r in scored.select("event_id").collect()]
    assert len(ids) == len(set(ids)), "an event was scored twice"
    assert set(ids) == good_ids, (
        f"missing {len(good_ids - set(ids))}, unexpected {len(set(ids) - good_ids)}"
    )
    quarantine = tables.read("_quarantine.card_events").select("reason", "raw_value").collect()
    assert len(quarantine) == len(bad)
    assert {r["reason"] for r in quarantine} == {
        "not a JSON object",
        "missing event_id",
        "invalid amount",
        "invalid event_time",
        "missing instrument_id",
    }
    # No card number in the quarantine: no free-standing Luhn-valid run of 13 to 19 digits
    # (transaction ids, "TX" and 14 digits, are no card numbers).
    pans = [
        m
        for r in quarantine
        for m in re.findall(r"(?<![A-Za-z0-9])\d{13,19}(?!\d)", r["raw_value"])
        if _luhn(m)
    ]
    assert pans == []
    threshold = scored.first()["threshold"]
    expected = _batch_expected(spark, lake, good)
    joined = scored.join(
        expected.withColumnRenamed("score", "batch_score"), on="event_id", how="inner"
    ).where(F.abs(F.col("score") - F.col("batch_score")) > 1e-9)
    assert joined.count() == 0, joined.limit(5).collect()
    alerts = tables.read("gold.fraud_alerts_live")
    alert_ids = [r["event_id"] for r in alerts.select("event_id").collect()]
    assert len(alert_ids) == len(set(alert_ids)), "an alert was written twice"
    batch_alerts = {
        r["event_id"]
        for r in expected.where(F.col("score") >= threshold).select("event_id").collect()
    }
    assert set(alert_ids) == batch_alerts
    # The champion's threshold is its training scores' 90th percentile: about one in ten alerts.
    assert len(good_ids) // 100 < len(alert_ids) < len(good_ids) // 3
    # Each alert names its event's own instrument as sent (a card by bronze's token, never its
    # number; a wallet by its id), and comes after the event.
    sent = {p["event_id"]: p["instrument_id"] for p in map(json.loads, good)}
    rows = alerts.select("event_id", "card_token", "event_time", "alert_time").collect()
    assert {r["event_id"]: r["card_token"] for r in rows} == {
        r["event_id"]: sent[r["event_id"]] for r in rows
    }
    assert [r["event_id"] for r in rows if r["alert_time"] < r["event_time"]] == []


def test_kafka_stream_scores_each_event_once_and_alerts_as_batch_scoring_does(
    spark: SparkSession, base_lake: MiniLake, kafka: Broker, tmp_path: Path
) -> None:
    lake = _copy(base_lake, tmp_path / "lake")
    key = _token_key()
    good, bad, dups = _messages(key)
    assert (len(good), len(bad), dups) == (
        EVENTS,
        EVENTS // MALFORMED_EVERY,
        EVENTS // DUPLICATE_EVERY,
    )
    wire = list(
        synth_events(
            _params(),
            max_events=EVENTS,
            token_key=key,
            malformed_every=MALFORMED_EVERY,
            duplicate_every=DUPLICATE_EVERY,
        )
    )
    first, rest = wire[: len(wire) // 2], wire[len(wire) // 2 :]
    # Duplicates within a micro-batch come with the source (each right after its original);
    # across micro-batches, the job's first batch is the first half (all on the topic before it
    # starts, no cap), and the second half begins with the first half's newest events sent
    # again, as a producer retrying after a lost acknowledgement would. Their event times are
    # within an hour of the first batch's newest, well inside the watermark: only the
    # deduplication state can stop them.
    resent = [e for e in first if e.payload is not None][-RESENT:]
    newest = max(e.payload["event_time"] for e in first if e.payload is not None)
    assert [e.payload["event_time"][:10] for e in resent] == [newest[:10]] * RESENT
    create_topics(kafka.bootstrap, {"core-events": 2, "core-alerts": 1})
    _send(kafka.bootstrap, "core-events", first)
    log = tmp_path / "stream.log"
    job = _job(
        lake,
        log,
        "--source",
        "kafka",
        "--bootstrap",
        kafka.bootstrap,
        "--topic",
        "core-events",
        "--alerts-topic",
        "core-alerts",
        "--idle-stop",
        "5",
    )
    _wait_for_commit(job, lake, log)
    _send(kafka.bootstrap, "core-events", [*resent, *rest])
    _wait_exit(job, log, JOB_DEADLINE_S)
    _check_outputs(spark, lake, good, bad)
    scored = lake.tables(spark).read("silver.card_events_scored")
    resent_batches = {
        r["batch_id"]
        for r in scored.where(F.col("event_id").isin([e.payload["event_id"] for e in resent]))
        .select("batch_id")
        .collect()
    }
    assert resent_batches == {0}  # scored in the first batch, their copies came later
    alert_ids = [
        r["event_id"]
        for r in lake.tables(spark).read("gold.fraud_alerts_live").select("event_id").collect()
    ]
    # No batch was replayed, so each alert is on the topic exactly once.
    assert sorted(_consume(kafka.bootstrap, "core-alerts")) == sorted(alert_ids)


def test_kafka_stream_scores_each_event_once_through_a_crash_and_a_broker_restart(
    spark: SparkSession, base_lake: MiniLake, kafka: Broker, tmp_path: Path
) -> None:
    stream_lake = _copy(base_lake, tmp_path / "lake")
    key = _token_key()
    good, bad, dups = _messages(key)
    assert (len(good), len(bad), dups) == (
        EVENTS,
        EVENTS // MALFORMED_EVERY,
        EVENTS // DUPLICATE_EVERY,
    )
    create_topics(kafka.bootstrap, {"card-events": 2, "fraud-alerts": 1})
    log = tmp_path / "stream.log"
    args = ("--source", "kafka", "--bootstrap", kafka.bootstrap)
    # The cap makes the first job's batches small, so that it is killed with work left; the
    # second replays the killed batch as logged, then takes the rest in one go.
    first = _job(stream_lake, log, *args, "--max-per-trigger", "400")
    sent: dict[str, Any] = {}

    def produce() -> None:
        sent["summary"] = publish(
            bootstrap=kafka.bootstrap,
            topic="card-events",
            params=_params(),
            rate_per_second=150,
            max_events=EVENTS,
            max_seconds=600,
            token_key=key,
            malformed_every=MALFORMED_EVERY,
            duplicate_every=DUPLICATE_EVERY,
        )

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(4)  # the producer is mid-way through its ~15 s of sending
    kafka.restart()
    # Kill -9 the streaming process once it has committed something, before it has it all.
    _wait_for_commit(first, stream_lake, log)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    producer.join(timeout=600)
    assert sent["summary"].events == EVENTS
    killed_at = len(_scored_ids(stream_lake))
    assert 0 < killed_at, "the job was killed before its first commit"
    second = _job(stream_lake, log, *args, "--idle-stop", "8")
    _wait_exit(second, log, JOB_DEADLINE_S)
    _check_outputs(spark, stream_lake, good, bad)
    alerts_on_topic = _consume(kafka.bootstrap, "fraud-alerts")
    alert_ids = {
        r["event_id"]
        for r in stream_lake.tables(spark)
        .read("gold.fraud_alerts_live")
        .select("event_id")
        .collect()
    }
    assert set(alerts_on_topic) == alert_ids  # at least once on the topic, keyed by event id


def _consume(bootstrap: str, topic: str) -> list[str]:
    """The keys of every message on ``topic``, read from its start to its end (the job that
    wrote them has exited, so the end is known; no group, no idle timer)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "test-alerts",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    partitions = list(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    keys: list[str] = []
    ended: set[int] = set()
    deadline = time.monotonic() + READ_DEADLINE_S
    while len(ended) < len(partitions):
        assert time.monotonic() < deadline, f"{topic} not read to its end in {READ_DEADLINE_S} s"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                ended.add(msg.partition())
            continue
        keys.append(msg.key().decode())
    consumer.close()
    return keys


def land_file_events(lake: MiniLake, n: int) -> tuple[list[Any], list[Any]]:
    """The first ``n`` events of the test's stream written as event files to ``lake``'s
    landing folder (the file source's input); returns the good and the malformed messages
    among them, the answers ``_check_outputs`` checks against."""
    good, bad, _ = _messages(_token_key())
    stream(
        landing_dir=lake.root / "landing" / "events",
        params=_params(),
        rate_per_second=0,
        max_events=n,
        token_key=_token_key(),
        malformed_every=MALFORMED_EVERY,
        duplicate_every=DUPLICATE_EVERY,
    )
    return good[:n], [b for i, b in enumerate(bad) if (i + 1) * MALFORMED_EVERY <= n]


@pytest.mark.heavy  # one more job start for the same checks through the other source
def test_embedded_file_stream_gives_the_same_outputs_without_a_broker(
    spark: SparkSession, base_lake: MiniLake, tmp_path: Path
) -> None:
    lake = _copy(base_lake, tmp_path / "lake")
    # The file path is the same job; fewer events keep it quick.
    good_n, bad_n = land_file_events(lake, 300)
    log = tmp_path / "stream.log"
    proc = _job(lake, log, "--source", "files", "--idle-stop", "8")
    _wait_exit(proc, log, JOB_DEADLINE_S)
    _check_outputs(spark, lake, good_n, bad_n)


def test_a_new_champion_is_picked_up_without_a_restart(base_lake: MiniLake, tmp_path: Path) -> None:
    from cardlake.ml import tracking
    from cardlake.ml.settings import load_ml_settings
    from cardlake.stream.job import Champion

    lake = _copy(base_lake, tmp_path / "lake")
    ml = load_ml_settings("test")
    tracker = tracking.Tracker.configure(str(lake.lake_root), ml.tracking)
    champion = Champion(name=ml.fraud.model_name, tracking_uri=tracker.uri, refresh_seconds=0)
    first = champion.current()
    assert first.version == "1" and first.model is not None
    from mlflow.tracking import MlflowClient

    source = (
        MlflowClient(tracking_uri=tracker.uri, registry_uri=tracker.uri)
        .get_model_version(ml.fraud.model_name, "1")
        .source
    )
    tracking.register_and_promote(
        tracker,
        name=ml.fraud.model_name,
        model_uri=source,
        metric="test_auc",
        value=0.9,
        tags={"threshold": "0.25", "small_amount_usd": "3.5"},
    )
    now = champion.current()  # the next micro-batch's call
    assert (now.version, now.threshold, now.small_amount_usd) == ("2", 0.25, 3.5)
