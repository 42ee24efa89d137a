"""The SQL server's tables on the delta-rs engine (``sql_access.MirroredTables``): Spark's own
Parquet scan of exactly the latest snapshot's files, masks on top, and a new commit visible
within ``sql_server.refresh_seconds``. In the test session, without the Thrift server: the
server publishes the same views (tests/integration/test_sql_server.py drives the server).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from cardlake.governance.settings import load_governance
from cardlake.governance.sql_access import (
    CLEAR_SUFFIX,
    MASKED_LAYERS,
    RAW_PREFIX,
    MirroredTables,
    publish,
)
from cardlake.tables import Tables
from cardlake.tables.catalog import SQL_LAYERS

SCHEMA = StructType(
    [
        StructField("customer_key", StringType()),
        StructField("email", StringType()),  # masked for analysts: first letter and domain
        StructField("amount_usd", DoubleType()),
        StructField("month", StringType()),
    ]
)
REFRESH_S = 0.2
# The stated bound is refresh_seconds plus the linking (a catalog update, milliseconds when
# idle); this slack covers a test machine at a load of 10 on two cores.
LINKING_SLACK_S = 20.0


def _frame(spark: SparkSession, rows: list[tuple[str, str | None, float, str]]) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA)


@pytest.fixture
def published(
    spark: SparkSession, rs_tables: Tables, tmp_path: Path
) -> Iterator[tuple[Tables, MirroredTables]]:
    rs_tables.overwrite(
        "gold.people_spend",
        _frame(
            spark,
            [
                ("CK1", "ann@x.io", 10.0, "2024-01"),
                ("CK2", None, 20.0, "2024-01"),
                ("CK3", "bo@y.org", 30.0, "2024-02"),
            ],
        ),
        partition_by=["month"],
    )
    mirrors = MirroredTables(spark, folder=str(tmp_path / "links"), refresh_seconds=REFRESH_S)
    publish(
        spark,
        load_governance("test"),
        lake_root=rs_tables.lake_root,
        engine="delta-rs",
        mirrors=mirrors,
    )
    yield rs_tables, mirrors
    for layer in (*SQL_LAYERS, *MASKED_LAYERS):
        for schema in (RAW_PREFIX + layer, layer + CLEAR_SUFFIX, layer):
            spark.sql(f"DROP DATABASE IF EXISTS `{schema}` CASCADE")


def test_analysts_read_the_snapshot_through_masks(
    spark: SparkSession, published: tuple[Tables, MirroredTables]
):
    expected = _frame(
        spark,
        [
            ("CK1", "a***@x.io", 10.0, "2024-01"),
            ("CK2", None, 20.0, "2024-01"),
            ("CK3", "b***@y.org", 30.0, "2024-02"),
        ],
    )
    assert_df_equality(
        spark.table("gold.people_spend"), expected, ignore_row_order=True, ignore_nullable=True
    )


def test_the_scan_is_sparks_parquet_reader_with_both_prunings(
    spark: SparkSession, published: tuple[Tables, MirroredTables]
):
    query = spark.table("gold.people_spend").where("month = '2024-02'").select("amount_usd")
    plan = query._jdf.queryExecution().executedPlan().toString()
    assert "FileScan parquet" in plan, plan
    assert "ReadSchema: struct<amount_usd:double>" in plan, plan  # one column of the four
    assert "PartitionFilters: [isnotnull(month" in plan, plan
    assert [row.amount_usd for row in query.collect()] == [30.0]


def test_a_new_commit_is_visible_within_refresh_seconds(
    spark: SparkSession, published: tuple[Tables, MirroredTables]
):
    tables, mirrors = published
    # Replaces January's files (the old ones stay on disk, out of the snapshot) and adds March.
    tables.replace_partitions(
        "gold.people_spend",
        _frame(
            spark,
            [
                ("CK1", "ann@x.io", 11.0, "2024-01"),
                ("CK4", "cy@z.net", 40.0, "2024-03"),
            ],
        ),
        partitions={"month": ["2024-01", "2024-03"]},
        partition_by=["month"],
    )
    expected = _frame(
        spark,
        [
            ("CK1", "ann@x.io", 11.0, "2024-01"),
            ("CK3", "bo@y.org", 30.0, "2024-02"),
            ("CK4", "cy@z.net", 40.0, "2024-03"),
        ],
    )
    stop = threading.Event()
    watcher = threading.Thread(target=mirrors.watch, args=(stop,), daemon=True)
    started = time.monotonic()
    watcher.start()
    try:
        deadline = started + REFRESH_S + LINKING_SLACK_S
        seen = spark.table("gold_clear.people_spend").collect()
        while sorted(r.amount_usd for r in seen) != [11.0, 30.0, 40.0]:
            assert time.monotonic() < deadline, f"still {seen} after {deadline - started:.1f} s"
            time.sleep(REFRESH_S / 4)
            seen = spark.table("gold_clear.people_spend").collect()
    finally:
        stop.set()
        watcher.join()
    assert_df_equality(
        spark.table("gold_clear.people_spend"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_readers_never_miss_a_table_while_it_is_relinked(
    spark: SparkSession, published: tuple[Tables, MirroredTables]
):
    # Spark's CREATE OR REPLACE VIEW drops the view and creates it again: a query analysed in
    # between failed with TABLE_OR_VIEW_NOT_FOUND (seen once in a full CI run). Commits and
    # re-links in a loop while two readers query the views; every read must succeed.
    tables, mirrors = published
    stop = threading.Event()
    failures: list[str] = []
    reads = [0]

    def read(name: str) -> None:
        while not stop.is_set():
            try:
                spark.table(name)  # analysed at once: each view down to the versioned table
                reads[0] += 1
            except Exception as error:  # any failure is the finding
                failures.append(f"{name}: {str(error).splitlines()[0]}")

    readers = [
        threading.Thread(target=read, args=(name,), daemon=True)
        for name in ("gold_clear.people_spend", "gold.people_spend")
    ]
    for reader in readers:
        reader.start()
    try:
        for day in range(1, 31):
            tables.append(
                "gold.people_spend",
                _frame(spark, [(f"CKN{day}", None, float(day), "2024-04")]),
                partition_by=["month"],
            )
            assert mirrors.refresh() == ["gold.people_spend"]
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert failures == [], f"{len(failures)} of {reads[0] + len(failures)} reads: {failures[:3]}"
    assert spark.table("gold.people_spend").where("month = '2024-04'").count() == 30
