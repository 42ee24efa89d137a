"""Concurrent writers, on both engines: what lands, what conflicts, and that nothing is lost.

The engines differ in how they get there (delta-rs: a commit lock and our own replay of the
commits since the read; delta-spark: Delta's optimistic concurrency plus the same replay from the
caller's read version), so the tests assert the outcome, never one engine's version numbers
beyond "one commit per write".
"""

from __future__ import annotations

import threading

import pytest
from pyspark.sql import SparkSession

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


def test_a_delete_racing_an_optimize_loses_no_row_and_resurrects_none(
    tables: Tables, spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "silver.race"
    for i in range(4):  # four small files in one partition, for OPTIMIZE to compact
        tables.append(
            name,
            spark.createDataFrame([(i, "2025-06")], "id long, month string").coalesce(1),
            partition_by=["month"],
        )
    reached, release = threading.Event(), threading.Event()
    outcome: list[BaseException | None] = []
    if tables.engine.name == "delta-rs":
        # Pause the delete after it wrote its files and before it commits.
        original = type(tables.engine)._commit

        def paused(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            reached.set()
            assert release.wait(120)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(type(tables.engine), "_commit", paused)
    else:
        reached.set()  # the JVM cannot be paused from here: the two simply run at once
        release.set()

    def delete() -> None:
        try:
            tables.delete(name, "id = 1")
            outcome.append(None)
        except BaseException as exc:  # collected and checked in the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=delete)
    worker.start()
    assert reached.wait(120)
    try:
        tables.optimize(name)
    except ConcurrentModificationError:  # delta-spark: the delete committed first
        pass
    release.set()
    worker.join()
    ids = sorted(r.id for r in tables.read(name).collect())
    if outcome == [None]:
        assert ids == [0, 2, 3]
    else:
        assert isinstance(outcome[0], ConcurrentModificationError), outcome[0]
        assert ids == [0, 1, 2, 3]
        tables.delete(name, "id = 1")  # a retry succeeds
        assert sorted(r.id for r in tables.read(name).collect()) == [0, 2, 3]
    if tables.engine.name == "delta-rs":
        assert outcome != [None], "the paused delete must not commit over the compaction"
