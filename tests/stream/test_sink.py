"""The fraud stream's query in this process, on the mini lake and the file source.

A micro-batch too big for the constant sets (``max_literal_ids``) looks silver up with joins and
still scores every event as batch scoring does; the same batch replayed after its appends
committed but before the checkpoint recorded it (a crash in that window, made here by taking
the batch's commit out of the checkpoint) commits nothing twice. The session has the stream
job's own SQL settings for these tests, so no batch without input follows the data's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cardlake.stream.job import (
    ALERTS_TABLE,
    QUARANTINE_TABLE,
    SCORED_TABLE,
    STREAM_SPARK_CONF,
    StreamSettings,
    start,
)
from tests.integration.test_stream import _check_outputs, _copy, land_file_events
from tests.stream.mini_lake import MiniLake

pytestmark = pytest.mark.slow
EVENTS = 300  # one micro-batch; enough for a few alerts and malformed messages


@pytest.fixture(scope="module")
def base_lake(stream_mini_lake: MiniLake) -> MiniLake:
    return stream_mini_lake  # shared with tests/integration/test_stream.py


@pytest.fixture
def stream_spark(spark: SparkSession) -> Iterator[SparkSession]:
    """The shared session with the stream job's SQL settings (``jobs/stream.py`` builds its own
    session with them), put back as they were afterwards."""
    before = {key: spark.conf.get(key, None) for key in STREAM_SPARK_CONF}
    for key, value in STREAM_SPARK_CONF.items():
        spark.conf.set(key, value)
    yield spark
    for key, old in before.items():
        if old is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, old)


def _committed_batches(checkpoint: Path) -> list[int]:
    return sorted(int(p.name) for p in (checkpoint / "commits").iterdir() if p.name.isdigit())


def _run_until_idle(spark: SparkSession, lake: MiniLake, settings: StreamSettings) -> None:
    running = start(spark, lake.cfg, lake.tables(spark), settings)
    try:
        running.query.processAllAvailable()
    finally:
        running.stop()


def _forget_commits_from(checkpoint: Path, batch_id: int) -> None:
    """The checkpoint as a crash after ``batch_id``'s appends leaves it: the batch planned
    (its offsets logged), its commit not written; no later batch."""
    for folder, first in (("commits", batch_id), ("offsets", batch_id + 1)):
        for path in (checkpoint / folder).iterdir():
            number = path.name.lstrip(".").split(".")[0]
            if number.isdigit() and int(number) >= first:
                path.unlink()


def test_a_big_batch_joins_and_its_replay_after_a_crash_commits_nothing_twice(
    stream_spark: SparkSession, base_lake: MiniLake, tmp_path: Path
) -> None:
    spark = stream_spark
    lake = _copy(base_lake, tmp_path / "lake")
    good_n, bad_n = land_file_events(lake, EVENTS)
    events_dir = lake.root / "landing" / "events"
    settings = StreamSettings(
        source="files",
        events_dir=str(events_dir),
        watermark="3 days",
        model_refresh_seconds=3600,
        max_literal_ids=10,  # the batch's few hundred customers: joins
        name="sink_test",
    )
    _run_until_idle(spark, lake, settings)
    _check_outputs(spark, lake, good_n, bad_n)
    tables = lake.tables(spark)
    written = tables.read(SCORED_TABLE).select("batch_id").distinct().collect()
    assert len(written) == 1, "the test's events should make one micro-batch"
    batch_id = int(written[0]["batch_id"])
    for table in (SCORED_TABLE, ALERTS_TABLE):  # one file a month per batch, not one a task
        files = tables.read(table).groupBy("month").agg(F.count_distinct("_metadata.file_path"))
        per_month = {r[0]: r[1] for r in files.collect()}
        assert len(per_month) >= 1 and per_month == dict.fromkeys(per_month, 1), (table, per_month)
    versions = {t: tables.version(t) for t in (SCORED_TABLE, ALERTS_TABLE, QUARANTINE_TABLE)}
    checkpoint = Path(lake.cfg.lake_path("_checkpoints", settings.name)) / "alerts"
    # The watermark moved, but no batch without input ran after the data's.
    assert _committed_batches(checkpoint) == [batch_id]
    _forget_commits_from(checkpoint, batch_id)
    assert not (checkpoint / "commits" / str(batch_id)).exists()
    _run_until_idle(spark, lake, settings)
    assert (checkpoint / "commits" / str(batch_id)).exists(), "the batch was not replayed"
    assert {t: tables.version(t) for t in versions} == versions
    _check_outputs(spark, lake, good_n, bad_n)
