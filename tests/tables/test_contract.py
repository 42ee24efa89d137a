"""The table layer's contract, run against every engine this machine can load."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from chispa import assert_df_equality
from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from cardlake.spark import delta_spark_loaded
from cardlake.tables import (
    Idempotency,
    SchemaMismatchError,
    TableError,
    TableNotFoundError,
    Tables,
)

SCHEMA = StructType(
    [
        StructField("id", LongType()),
        StructField("month", StringType()),
        StructField("amount", LongType()),
    ]
)
NAME = "gold.accounts"


def rows(spark: SparkSession, data: list[tuple]):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(data, SCHEMA)


def assert_rows(tables: Tables, expected, **read_args) -> None:  # type: ignore[no-untyped-def]
    assert_df_equality(
        tables.read(NAME, **read_args),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )


BASE = [(1, "2025-05", 10), (2, "2025-06", 20), (3, None, None)]


@pytest.fixture
def seeded(tables: Tables, spark: SparkSession) -> Tables:
    tables.append(NAME, rows(spark, BASE), partition_by=["month"])
    return tables


def test_create_gives_an_empty_table_with_schema_and_partitions(tables: Tables) -> None:
    assert tables.create(NAME, SCHEMA, partition_by=["month"]) is True
    assert tables.create(NAME, SCHEMA, partition_by=["month"]) is False
    assert tables.schema(NAME).fieldNames() == ["id", "month", "amount"]
    assert tables.engine.partition_columns(tables.path(NAME)) == ["month"]
    assert tables.read(NAME).count() == 0


def test_read_of_a_missing_table_names_it(tables: Tables) -> None:
    with pytest.raises(TableNotFoundError, match="gold/nothing"):
        tables.read("gold.nothing")


def test_append_then_read_returns_the_rows_including_nulls(
    seeded: Tables, spark: SparkSession
) -> None:
    assert_rows(seeded, rows(spark, BASE))


def test_append_adds_to_existing_rows(seeded: Tables, spark: SparkSession) -> None:
    seeded.append(NAME, rows(spark, [(4, "2025-06", 40)]))
    assert_rows(seeded, rows(spark, [*BASE, (4, "2025-06", 40)]))


def test_append_matches_columns_by_name(seeded: Tables, spark: SparkSession) -> None:
    reordered = rows(spark, [(5, "2025-07", 50)]).select("amount", "id", "month")
    seeded.append(NAME, reordered)
    assert_rows(seeded, rows(spark, [*BASE, (5, "2025-07", 50)]))


def test_overwrite_replaces_every_row(seeded: Tables, spark: SparkSession) -> None:
    seeded.overwrite(NAME, rows(spark, [(9, "2025-01", 90)]))
    assert_rows(seeded, rows(spark, [(9, "2025-01", 90)]))


def test_replace_partitions_touches_only_the_named_partition(
    seeded: Tables, spark: SparkSession
) -> None:
    seeded.replace_partitions(
        NAME, rows(spark, [(7, "2025-06", 70), (8, "2025-06", 80)]), partitions={"month": "2025-06"}
    )
    assert_rows(
        seeded,
        rows(spark, [(1, "2025-05", 10), (3, None, None), (7, "2025-06", 70), (8, "2025-06", 80)]),
    )


def test_replace_partitions_refuses_rows_outside_the_partitions(
    seeded: Tables, spark: SparkSession
) -> None:
    with pytest.raises(Exception, match=r"2025-07|replaceWhere|outside"):
        seeded.replace_partitions(
            NAME, rows(spark, [(7, "2025-07", 70)]), partitions={"month": "2025-06"}
        )
    assert_rows(seeded, rows(spark, BASE))


def test_merge_updates_matches_and_inserts_the_rest_with_null_safe_keys(
    seeded: Tables, spark: SparkSession
) -> None:
    source = rows(spark, [(1, "2025-05", 11), (3, None, 33), (4, "2025-07", 40)])
    seeded.merge(NAME, source, keys=["id", "month"])
    assert_rows(
        seeded,
        rows(spark, [(1, "2025-05", 11), (2, "2025-06", 20), (3, None, 33), (4, "2025-07", 40)]),
    )


def test_merge_with_an_update_condition_leaves_unchanged_rows_alone(
    seeded: Tables, spark: SparkSession
) -> None:
    source = rows(spark, [(1, "2025-05", 10), (2, "2025-06", 21)])
    seeded.merge(
        NAME,
        source,
        keys=["id"],
        update_condition="NOT (t.amount <=> s.amount)",
        when_not_matched="ignore",
    )
    assert_rows(seeded, rows(spark, [(1, "2025-05", 10), (2, "2025-06", 21), (3, None, None)]))


def test_merge_can_delete_matches(seeded: Tables, spark: SparkSession) -> None:
    seeded.merge(
        NAME,
        rows(spark, [(2, "2025-06", 0)]),
        keys=["id"],
        when_matched="delete",
        when_not_matched="ignore",
    )
    assert_rows(seeded, rows(spark, [(1, "2025-05", 10), (3, None, None)]))


def test_merge_refuses_a_source_key_that_matches_twice(seeded: Tables, spark: SparkSession) -> None:
    source = rows(spark, [(1, "2025-05", 1), (1, "2025-05", 2)])
    with pytest.raises(Exception, match=r"(?i)multiple source rows|several source rows"):
        seeded.merge(NAME, source, keys=["id"])
    assert_rows(seeded, rows(spark, BASE))


def test_delete_by_predicate(seeded: Tables, spark: SparkSession) -> None:
    seeded.delete(NAME, "amount >= 20")
    assert_rows(seeded, rows(spark, [(1, "2025-05", 10), (3, None, None)]))


def test_rewrite_rows_changes_only_files_holding_them_in_one_commit_keeping_no_parameter(
    seeded: Tables, spark: SparkSession
) -> None:
    seeded.append(NAME, rows(spark, [(2, "2025-06", 20)]))  # the same row twice: both go
    files = set(seeded.read(NAME).inputFiles())
    before = seeded.version(NAME)
    seeded.rewrite_rows(
        NAME,
        delete_where="t.month RLIKE p.gone",
        update_where="t.month RLIKE p.named",
        assignments={"amount": "NULL"},
        parameters={"gone": "^2025-0[6]$", "named": "^2025-0[5]$"},
    )
    assert_rows(seeded, rows(spark, [(1, "2025-05", None), (3, None, None)]))
    assert seeded.version(NAME) == before + 1
    # The file of the month neither condition holds in stays; the other two are replaced.
    kept = files & set(seeded.read(NAME).inputFiles())
    assert [f for f in kept if "2025-0" in f] == [] and len(kept) == 1
    log = spark.read.text(f"{seeded.path(NAME)}/_delta_log/*.json").collect()
    assert not [r.value for r in log if "2025-0[" in r.value]


def test_time_travel_returns_the_old_rows_by_version_and_timestamp(
    seeded: Tables, spark: SparkSession
) -> None:
    first = seeded.version(NAME)
    time.sleep(1.1)  # commit timestamps have millisecond resolution; keep them apart
    between = datetime.now(UTC)
    time.sleep(1.1)
    seeded.overwrite(NAME, rows(spark, [(9, "2025-01", 90)]))
    assert_rows(seeded, rows(spark, BASE), version=first)
    assert_rows(seeded, rows(spark, BASE), timestamp=between.isoformat())
    assert_rows(seeded, rows(spark, [(9, "2025-01", 90)]))


def test_history_lists_commits_newest_first(seeded: Tables, spark: SparkSession) -> None:
    seeded.append(NAME, rows(spark, [(4, "2025-06", 40)]))
    versions = [h["version"] for h in seeded.history(NAME)]
    assert versions == sorted(versions, reverse=True)
    assert versions[0] == seeded.version(NAME)
    assert len(versions) >= 2


def test_partition_pruning_reads_only_the_named_partitions(
    seeded: Tables, spark: SparkSession
) -> None:
    pruned = seeded.read(NAME, partitions={"month": ["2025-06"]})
    assert_df_equality(pruned, rows(spark, [(2, "2025-06", 20)]), ignore_nullable=True)
    assert all("month=2025-06" in f for f in pruned.inputFiles())


def test_idempotent_write_commits_once(tables: Tables, spark: SparkSession) -> None:
    key = Idempotency("ingest/gold.accounts/2025-06", 1)
    first = tables.append(NAME, rows(spark, BASE), partition_by=["month"], idempotency=key)
    again = tables.append(NAME, rows(spark, BASE), partition_by=["month"], idempotency=key)
    assert first.committed is True
    assert again.committed is False
    assert again.version == first.version
    assert_rows(tables, rows(spark, BASE))
    newer = tables.append(
        NAME, rows(spark, [(4, "2025-06", 40)]), idempotency=Idempotency(key.app_id, 2)
    )
    assert newer.committed is True
    assert tables.read(NAME).count() == 4


def test_mismatched_append_fails_naming_the_columns(seeded: Tables, spark: SparkSession) -> None:
    wrong = spark.createDataFrame(
        [(1, "2025-05", "ten", "x")], "id long, month string, amount string, note string"
    )
    with pytest.raises(SchemaMismatchError) as failure:
        seeded.append(NAME, wrong)
    message = str(failure.value)
    assert "amount" in message and "note" in message
    missing = spark.createDataFrame([(1, "2025-05")], "id long, month string")
    with pytest.raises(SchemaMismatchError, match="amount"):
        seeded.append(NAME, missing)
    assert_rows(seeded, rows(spark, BASE))


def test_schema_evolution_adds_nullable_columns_when_asked(
    seeded: Tables, spark: SparkSession
) -> None:
    wider = spark.createDataFrame(
        [(4, "2025-06", 40, "new")], "id long, month string, amount long, note string"
    )
    seeded.append(NAME, wider, schema_mode="merge")
    expected = spark.createDataFrame(
        [
            (1, "2025-05", 10, None),
            (2, "2025-06", 20, None),
            (3, None, None, None),
            (4, "2025-06", 40, "new"),
        ],
        "id long, month string, amount long, note string",
    )
    assert_df_equality(seeded.read(NAME), expected, ignore_row_order=True, ignore_nullable=True)


def test_optimize_compacts_small_files_and_keeps_rows(tables: Tables, spark: SparkSession) -> None:
    for i in range(4):
        tables.append(NAME, rows(spark, [(i, "2025-06", i)]).coalesce(1), partition_by=["month"])
    before = len(tables.read(NAME).inputFiles())
    tables.optimize(NAME)
    after = len(tables.read(NAME).inputFiles())
    assert (before, after) == (4, 1)
    assert_rows(tables, rows(spark, [(i, "2025-06", i) for i in range(4)]))
    tables.optimize(NAME, zorder_by=["amount"])
    assert tables.read(NAME).count() == 4


def test_vacuum_removes_files_old_versions_needed(seeded: Tables, spark: SparkSession) -> None:
    old_files = set(seeded.read(NAME).inputFiles())
    old_version = seeded.version(NAME)  # engines differ in how many commits a first write makes
    seeded.overwrite(NAME, rows(spark, [(9, "2025-01", 90)]))
    seeded.vacuum(NAME, retention_hours=0)
    current = set(seeded.read(NAME).inputFiles())
    assert current.isdisjoint(old_files)
    # The old version's files are gone: delta-rs refuses in the table layer, Spark's reader
    # fails on the first missing file (raised by the JVM, as Py4JJavaError).
    with pytest.raises(
        (TableError, Py4JJavaError),
        match=r"data file\(s\) that do not exist|FAILED_READ_FILE\.FILE_NOT_EXIST",
    ):
        seeded.read(NAME, version=old_version).collect()


def test_restore_brings_back_an_old_version(seeded: Tables, spark: SparkSession) -> None:
    first = seeded.version(NAME)
    seeded.overwrite(NAME, rows(spark, [(9, "2025-01", 90)]))
    seeded.restore(NAME, first)
    assert_rows(seeded, rows(spark, BASE))
    assert seeded.version(NAME) == first + 2


def test_sql_sees_the_latest_commit_by_name(seeded: Tables, spark: SparkSession) -> None:
    described = {
        r.col_name: r.data_type for r in spark.sql(f"DESCRIBE TABLE EXTENDED {NAME}").collect()
    }
    # A session with Delta's connector registers native Delta tables (its own scan, pruning and
    # data skipping), whichever engine commits; only one without it uses the Python data source,
    # which DESCRIBE names but gives no provider.
    if seeded.engine.name == "delta-spark" or delta_spark_loaded(spark):
        assert described["Provider"] == "delta"
    else:
        source = "cardlake_delta_gold_accounts"
        assert (described.get("Provider"), described["Name"]) == (None, source)
    assert spark.sql(f"select count(*) from {NAME}").first()[0] == 3
    seeded.append(NAME, rows(spark, [(4, "2025-06", 40)]))
    assert spark.sql(f"select sum(amount) from {NAME}").first()[0] == 70
    by_month = spark.sql(f"select month, count(*) as n from {NAME} group by month")
    expected = spark.createDataFrame(
        [("2025-05", 1), ("2025-06", 2), (None, 1)], "month string, n long"
    )
    assert_df_equality(by_month, expected, ignore_row_order=True, ignore_nullable=True)


def test_table_names_are_layer_dot_table(tables: Tables) -> None:
    with pytest.raises(TableError, match="layer"):
        tables.path("platinum.x")
    assert tables.path("_quarantine.crm").endswith("/_quarantine/crm")


def test_partition_values_with_special_characters_round_trip(
    tables: Tables, spark: SparkSession
) -> None:
    odd = ["a:b", "50%", "x y", "[x]*?", "é/ü"]
    df = spark.createDataFrame([(i, v, i) for i, v in enumerate(odd)], SCHEMA)
    tables.append(NAME, df, partition_by=["month"])
    assert_rows(tables, df)
    assert [r.id for r in tables.read(NAME, partitions={"month": "[x]*?"}).collect()] == [3]


def test_changes_since_names_only_the_partitions_whose_data_changed(
    seeded: Tables, spark: SparkSession
) -> None:
    read_at = seeded.version(NAME)
    assert seeded.changes_since(NAME, read_at).partitions == []
    seeded.append(NAME, rows(spark, [(4, "2025-07", 40)]))
    seeded.replace_partitions(
        NAME, rows(spark, [(2, "2025-06", 21)]), partitions={"month": "2025-06"}
    )
    seeded.optimize(NAME)  # compaction is no change
    changes = seeded.changes_since(NAME, read_at)
    assert changes.partitions == [{"month": "2025-06"}, {"month": "2025-07"}]
    assert (changes.whole_table, changes.latest) == (False, seeded.version(NAME))
    seeded.append(NAME, rows(spark, [(5, None, 1)]).withColumn("note", F.lit("x")),
                  schema_mode="merge")  # fmt: skip
    assert seeded.changes_since(NAME, read_at).whole_table is True


def test_sql_filters_on_partition_columns_return_the_right_rows(
    seeded: Tables, spark: SparkSession
) -> None:
    def ids(where: str) -> list[int]:
        return sorted(r.id for r in spark.sql(f"select id from {NAME} where {where}").collect())

    assert ids("month = '2025-06'") == [2]
    assert ids("month in ('2025-05', '2025-06')") == [1, 2]
    assert ids("month > '2025-05'") == [2]
    assert ids("month is null") == [3]
    assert ids("month <=> null") == [3]
    assert ids("month = '2025-06' or amount = 10") == [1, 2]
