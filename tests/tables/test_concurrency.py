"""Concurrent writers, on both engines: what lands, what conflicts, and that nothing is lost.

The engines differ in how they get there (delta-rs: a commit lock and our own replay of the
commits since the read; delta-spark: Delta's optimistic concurrency plus the same replay from the
caller's read version), so the tests assert the outcome, never one engine's version numbers
beyond "one commit per write".
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cardlake.tables import ConcurrentModificationError, Tables


def test_two_concurrent_appends_both_land(tables: Tables, spark: SparkSession) -> None:
    name = "bronze.events"
    tables.create(
        name, spark.createDataFrame([], "id long, month string").schema, partition_by=["month"]
    )
    start = tables.version(name)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def append(offset: int) -> None:
        try:
            df = spark.createDataFrame(
                [(offset + i, "2025-06") for i in range(200)], "id long, month string"
            )
            barrier.wait()
            tables.append(name, df)
        except BaseException as exc:  # collected and re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(k * 1000,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = sorted(r.id for r in tables.read(name).collect())
    assert ids == list(range(200)) + list(range(1000, 1200))
    assert tables.version(name) == start + 2


def test_two_concurrent_overwrites_of_one_partition_never_both_succeed(
    tables: Tables, spark: SparkSession
) -> None:
    name = "gold.kpi"
    schema = "id long, month string"
    tables.append(
        name,
        spark.createDataFrame([(0, "2025-06"), (1, "2025-05")], schema),
        partition_by=["month"],
    )
    read_version = tables.version(name)
    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def overwrite(tag: int) -> None:
        df = spark.createDataFrame([(tag, "2025-06")], schema)
        barrier.wait()
        try:
            tables.replace_partitions(
                name, df, partitions={"month": "2025-06"}, read_version=read_version
            )
            outcomes[tag] = "committed"
        except ConcurrentModificationError:
            outcomes[tag] = "conflict"

    threads = [threading.Thread(target=overwrite, args=(tag,)) for tag in (100, 200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes.values()) == ["committed", "conflict"]
    winner = next(tag for tag, outcome in outcomes.items() if outcome == "committed")
    june = sorted(r.id for r in tables.read(name, partitions={"month": "2025-06"}).collect())
    assert june == [winner]
    assert [r.id for r in tables.read(name, partitions={"month": "2025-05"}).collect()] == [1]


def test_an_overwrite_never_loses_a_concurrent_append_to_its_partition(
    tables: Tables, spark: SparkSession
) -> None:
    name = "gold.kpi"
    schema = "id long, month string"
    tables.append(name, spark.createDataFrame([(0, "2025-06")], schema), partition_by=["month"])
    read_version = tables.version(name)
    tables.append(name, spark.createDataFrame([(5, "2025-06"), (6, "2025-07")], schema))
    with pytest.raises(ConcurrentModificationError, match="2025-06"):
        tables.replace_partitions(
            name,
            spark.createDataFrame([(9, "2025-06")], schema),
            partitions={"month": "2025-06"},
            read_version=read_version,
        )
    assert sorted(r.id for r in tables.read(name).collect()) == [0, 5, 6]
    # An append to another partition does not conflict with replacing this one.
    read_version = tables.version(name)
    tables.append(name, spark.createDataFrame([(7, "2025-07")], schema))
    tables.replace_partitions(
        name,
        spark.createDataFrame([(9, "2025-06")], schema),
        partitions={"month": "2025-06"},
        read_version=read_version,
    )
    assert sorted(r.id for r in tables.read(name).collect()) == [6, 7, 9]


# The table of the race tests below, and what the DELETE or the MERGE makes of it.
RACE_SCHEMA = "id long, month string, amount long"
RACE_ROWS = [(0, "2025-06", 0), (1, "2025-06", 10), (2, "2025-06", 20), (3, "2025-06", 30)]
RACE_RESULT = {
    "delete": [(0, "2025-06", 0), (2, "2025-06", 20), (3, "2025-06", 30)],
    "merge": [(0, "2025-06", 0), (1, "2025-06", 11), (2, "2025-06", 20), (3, "2025-06", 30),
              (9, "2025-06", 90)],
}  # fmt: skip
# What each engine says when an OPTIMIZE compacted files the operation read. Delta checks the
# winner's added files against the loser's read first, so it reports the compaction's new file
# as a concurrent append (ConcurrentAppendException, naming the OPTIMIZE); the delta-rs engine's
# own check at commit finds the files it rewrites gone.
RACE_ERROR = {
    "delta-spark": r"\[DELTA_CONCURRENT_APPEND\S*\] .* a concurrent OPTIMIZE ",
    "delta-rs": r"this {operation} rewrites were removed by a commit after version \d+ "
    r"\(e\.g\. OPTIMIZE\)",
}
PAUSE_FUNCTION = "cardlake_test_pause"
DEADLINE_S = 120.0


def register_pause(spark: SparkSession, folder: Path) -> tuple[Path, Path]:
    """A SQL function that holds the first Spark task calling it until ``release`` exists.

    It runs in a Python worker (another process), so it signals through files: ``reached``
    when it starts holding. Every later call passes at once, so one task slot stays busy and
    the other is free for the OPTIMIZE.
    """
    reached, release = folder / "reached", folder / "release"

    def pause(_: int | None) -> bool:
        try:
            os.close(os.open(reached, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return True
        deadline = time.monotonic() + DEADLINE_S
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return True

    spark.udf.register(PAUSE_FUNCTION, pause, "boolean")
    return reached, release


def wait_for(path: Path, worker: threading.Thread) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not path.exists():
        assert worker.is_alive(), "the operation ended before it reached the pause"
        assert time.monotonic() < deadline, f"no {path.name} within {DEADLINE_S} s"
        time.sleep(0.05)


@pytest.mark.parametrize("operation", ["delete", "merge"])
def test_a_rewrite_racing_an_optimize_loses_no_row_and_resurrects_none(
    tables: Tables,
    spark: SparkSession,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    operation: str,
) -> None:
    """The bad ordering, forced: the DELETE or MERGE reads the table, an OPTIMIZE commits a
    compaction of the files it read, then the DELETE or MERGE tries to commit. Committing would
    resurrect the deleted row (or duplicate the merged one) from the compacted file, so both
    engines must refuse it with a conflict, change nothing, and succeed on a retry.

    delta-rs: the engine's ``_commit`` is held before it takes the commit lock. delta-spark: the
    JVM cannot be paused from here, so a Python function in the operation's own scan (the
    DELETE's predicate, the MERGE's source) holds it after Delta took its snapshot."""
    name = "silver.race"
    for rows in (RACE_ROWS[:2], RACE_ROWS[2:]):  # two files in one partition, for OPTIMIZE
        tables.append(
            name, spark.createDataFrame(rows, RACE_SCHEMA).coalesce(1), partition_by=["month"]
        )
    start = tables.version(name)
    engine = tables.engine.name
    hold = "true"  # the racing operation's extra condition: on delta-spark, the pause
    if engine == "delta-rs":
        reached, release = tmp_path / "reached", tmp_path / "release"
        original = type(tables.engine)._commit

        def paused(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            reached.touch()
            deadline = time.monotonic() + DEADLINE_S
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(type(tables.engine), "_commit", paused)
    else:
        reached, release = register_pause(spark, tmp_path)
        hold = f"{PAUSE_FUNCTION}(id)"

    def run(condition: str) -> None:
        if operation == "delete":
            tables.delete(name, f"id = 1 AND {condition}")
        else:
            source = spark.createDataFrame([(1, "2025-06", 11), (9, "2025-06", 90)], RACE_SCHEMA)
            tables.merge(name, source.filter(F.expr(condition)), keys=["id"])

    outcome: list[BaseException | None] = []

    def race() -> None:
        try:
            run(hold)
            outcome.append(None)
        except BaseException as exc:  # collected and checked in the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=race)
    worker.start()
    try:
        wait_for(reached, worker)
        tables.optimize(name)
    finally:
        release.touch()
        worker.join()

    def table_rows() -> list[tuple]:
        return sorted(tuple(r) for r in tables.read(name).select("id", "month", "amount").collect())

    assert len(outcome) == 1
    assert isinstance(outcome[0], ConcurrentModificationError), outcome[0]
    assert re.search(RACE_ERROR[engine].format(operation=operation), str(outcome[0])), outcome[0]
    assert tables.version(name) == start + 1  # the compaction, and nothing of the operation
    assert tables.history(name, 1)[0]["operation"] == "OPTIMIZE"
    assert table_rows() == RACE_ROWS
    run("true")  # a retry reads the compacted table and commits
    assert table_rows() == RACE_RESULT[operation]
