"""Tables written by one engine read identically by the other, by deltalake and by DuckDB.

And the delta-rs engine reads what delta-spark writes beyond plain files: deletion vectors (after
DELETE and MERGE), column mapping (name mode, after RENAME COLUMN), change data feed tables and
checkpoints. Every expected value here is written out by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from cardlake.spark import delta_spark_loaded
from cardlake.tables import (
    ConstraintViolationError,
    Tables,
    UnsupportedTableFeatureError,
)
from cardlake.tables.delta_rs import DeltaRsEngine

MIXED = (
    "id long, name string, amount decimal(12,2), booked date, at timestamp, "
    "ok boolean, score double, month string"
)
MIXED_ROWS: list[tuple[Any, ...]] = [
    (1, "Ana", Decimal("10.50"), date(2025, 6, 1), datetime(2025, 6, 1, 8, 30, tzinfo=UTC), True,
     0.5, "2025-06"),
    (2, "Bo: [x]*", Decimal("-3.00"), date(2025, 5, 31),
     datetime(2025, 5, 31, 23, 59, 59, tzinfo=UTC), False, None, "2025-05"),
    (3, None, None, None, None, None, None, None),
]  # fmt: skip


@pytest.fixture
def ds_tables(spark: SparkSession, tmp_path: Path, clean_catalog: None) -> Tables:
    """The delta-spark engine on the same lake folder as ``rs_tables``."""
    if not delta_spark_loaded(spark):
        from tests.conftest import delta_spark_missing

        pytest.skip(delta_spark_missing())
    from cardlake.tables.delta_spark import DeltaSparkEngine

    return Tables(
        spark=spark,
        lake_root=str(tmp_path / "lake"),
        engine=DeltaSparkEngine(spark=spark),
        register_sql=False,
    )


def _plain_rows(path: str) -> list[dict[str, Any]]:
    return sorted(DeltaTable(path).to_pyarrow_table().to_pylist(), key=lambda r: r["id"])


def _duckdb_rows(path: str) -> list[tuple[Any, ...]]:
    arrow = DeltaTable(path).to_pyarrow_table()  # noqa: F841 - DuckDB finds it by name
    return duckdb.sql("select id, name, amount, month from arrow order by id").fetchall()


@pytest.mark.parametrize("writer", ["delta-rs", "delta-spark"])
def test_a_table_written_by_either_engine_reads_the_same_everywhere(
    writer: str, rs_tables: Tables, ds_tables: Tables, spark: SparkSession
) -> None:
    name = "silver.mixed"
    write, other = (rs_tables, ds_tables) if writer == "delta-rs" else (ds_tables, rs_tables)
    df = spark.createDataFrame(MIXED_ROWS, MIXED)
    write.append(name, df, partition_by=["month"])
    write.append(name, spark.createDataFrame([(4, "Cy", None, None, None, None, None,
                                               "2025-06")], MIXED))  # fmt: skip
    expected = spark.createDataFrame(
        [*MIXED_ROWS, (4, "Cy", None, None, None, None, None, "2025-06")], MIXED
    )
    for reader in (write, other):
        assert_df_equality(reader.read(name), expected, ignore_row_order=True, ignore_nullable=True)
    june = other.read(name, partitions={"month": "2025-06"})
    assert sorted(r.id for r in june.collect()) == [1, 4]
    path = write.path(name)
    plain = _plain_rows(path)
    assert [r["id"] for r in plain] == [1, 2, 3, 4]
    assert plain[0] == dict(zip(df.columns, MIXED_ROWS[0], strict=True))
    assert plain[2] == dict(zip(df.columns, MIXED_ROWS[2], strict=True))
    assert _duckdb_rows(path) == [
        (1, "Ana", Decimal("10.50"), "2025-06"),
        (2, "Bo: [x]*", Decimal("-3.00"), "2025-05"),
        (3, None, None, None),
        (4, "Cy", None, "2025-06"),
    ]


SMALL = "id long, month string, amount long"


def _spark_table(spark: SparkSession, path: str, properties: str, rows: list[tuple]) -> None:
    spark.sql(
        f"CREATE TABLE delta.`{path}` (id long, month string, amount long) USING delta "
        f"PARTITIONED BY (month) TBLPROPERTIES ({properties})"
    )
    spark.createDataFrame(rows, SMALL).coalesce(1).write.format("delta").mode("append").save(path)


def _expect(spark: SparkSession, rows: list[tuple], schema: str = SMALL) -> DataFrame:
    return spark.createDataFrame(rows, schema)


BASE = [(1, "2025-05", 10), (2, "2025-06", 20), (3, "2025-06", 30), (4, "2025-06", 40),
        (5, None, None)]  # fmt: skip


def test_delta_rs_applies_deletion_vectors_from_delete_and_merge(
    rs_tables: Tables, ds_tables: Tables, spark: SparkSession
) -> None:
    name = "silver.dv"
    path = rs_tables.path(name)
    _spark_table(spark, path, "'delta.enableDeletionVectors' = 'true'", BASE)
    spark.sql(f"DELETE FROM delta.`{path}` WHERE id = 3")
    spark.sql(
        f"MERGE INTO delta.`{path}` t USING (SELECT 2L AS id, '2025-06' AS month, 21L AS amount) s "
        "ON t.id = s.id WHEN MATCHED THEN UPDATE SET *"
    )
    assert len(pa_dvs := DeltaTable(path).deletion_vectors().read_all()) >= 1, pa_dvs
    expected = _expect(
        spark, [(1, "2025-05", 10), (2, "2025-06", 21), (4, "2025-06", 40), (5, None, None)]
    )
    assert_df_equality(rs_tables.read(name), expected, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(ds_tables.read(name), expected, ignore_row_order=True, ignore_nullable=True)
    june = rs_tables.read(name, partitions={"month": "2025-06"})
    assert sorted(r.id for r in june.collect()) == [2, 4]
    # Appends keep deletion vectors intact; rewriting files that carry them is refused.
    rs_tables.append(name, _expect(spark, [(6, "2025-07", 60)]))
    assert sorted(r.id for r in rs_tables.read(name).collect()) == [1, 2, 4, 5, 6]
    with pytest.raises(UnsupportedTableFeatureError, match="deletion vectors"):
        rs_tables.delete(name, "id = 1")
    assert sorted(r.id for r in ds_tables.read(name).collect()) == [1, 2, 4, 5, 6]


def test_delta_spark_rewrite_rows_leaves_no_deleted_row_in_any_file_despite_deletion_vectors(
    ds_tables: Tables, spark: SparkSession
) -> None:
    name = "silver.dv_rewrite"
    path = ds_tables.path(name)
    _spark_table(spark, path, "'delta.enableDeletionVectors' = 'true'", BASE)
    ds_tables.rewrite_rows(
        name,
        delete_where="t.id = CAST(p.id AS BIGINT)",
        update_where="t.id = 4",
        assignments={"amount": "NULL"},
        parameters={"id": "3"},
    )
    ds_tables.vacuum(name, retention_hours=0)
    expected = [(1, "2025-05", 10), (2, "2025-06", 20), (4, "2025-06", None), (5, None, None)]
    assert sorted((tuple(r) for r in ds_tables.read(name).collect()), key=str) == expected
    assert DeltaTable(path).deletion_vectors().read_all().num_rows == 0
    # Every file left in the folder, read as plain Parquet: row 3 and row 4's old amount are gone.
    left = spark.read.parquet(*[str(f) for f in Path(path).rglob("*.parquet")
                                if "_delta_log" not in f.parts])  # fmt: skip
    assert sorted(r.id for r in left.collect()) == [1, 2, 4, 5]
    assert left.where("id = 4 AND amount IS NOT NULL").count() == 0


def test_delta_rs_maps_renamed_columns_to_their_physical_names(
    rs_tables: Tables, ds_tables: Tables, spark: SparkSession
) -> None:
    name = "silver.cm"
    path = rs_tables.path(name)
    _spark_table(
        spark,
        path,
        "'delta.columnMapping.mode' = 'name', 'delta.minReaderVersion' = '2', "
        "'delta.minWriterVersion' = '5'",
        BASE,
    )
    spark.sql(f"ALTER TABLE delta.`{path}` RENAME COLUMN amount TO value")
    spark.sql(f"ALTER TABLE delta.`{path}` RENAME COLUMN month TO period")
    expected = _expect(spark, BASE, "id long, period string, value long")
    got = rs_tables.read(name)
    assert got.columns == ["id", "period", "value"]
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(ds_tables.read(name), expected, ignore_row_order=True, ignore_nullable=True)
    june = rs_tables.read(name, partitions={"period": "2025-06"})
    assert sorted((r.id, r.value) for r in june.collect()) == [(2, 20), (3, 30), (4, 40)]
    with pytest.raises(UnsupportedTableFeatureError, match="columnMapping"):
        rs_tables.append(name, _expect(spark, [(9, "2025-06", 90)], "id long, period string, "
                                       "value long"))  # fmt: skip


def test_delta_rs_reads_change_data_feed_tables_and_checkpoints(
    rs_tables: Tables, ds_tables: Tables, spark: SparkSession
) -> None:
    name = "silver.cdf"
    path = rs_tables.path(name)
    _spark_table(spark, path, "'delta.enableChangeDataFeed' = 'true', "
                 "'delta.checkpointInterval' = '2'", BASE)  # fmt: skip
    spark.sql(f"UPDATE delta.`{path}` SET amount = -1 WHERE id = 4")
    for i in (6, 7, 8):
        ds_tables.append(name, _expect(spark, [(i, "2025-07", i)]))
    assert list(Path(path, "_delta_log").glob("*.checkpoint*.parquet")), "no checkpoint written"
    expected = _expect(
        spark,
        [(1, "2025-05", 10), (2, "2025-06", 20), (3, "2025-06", 30), (4, "2025-06", -1),
         (5, None, None), (6, "2025-07", 6), (7, "2025-07", 7), (8, "2025-07", 8)],
    )  # fmt: skip
    assert_df_equality(rs_tables.read(name), expected, ignore_row_order=True, ignore_nullable=True)
    assert [r["id"] for r in _plain_rows(path)] == [1, 2, 3, 4, 5, 6, 7, 8]
    # An append needs no change files; an overwrite would, and the embedded engine writes none.
    rs_tables.append(name, _expect(spark, [(9, "2025-07", 9)]))
    assert ds_tables.read(name).count() == 9
    with pytest.raises(UnsupportedTableFeatureError, match="change data"):
        rs_tables.replace_partitions(
            name, _expect(spark, [(9, "2025-07", 0)]), partitions={"month": "2025-07"}
        )


@pytest.mark.parametrize("engine_name", ["delta-rs", "delta-spark"])
def test_constraints_declared_by_another_writer_hold_on_both_engines(
    engine_name: str, rs_tables: Tables, ds_tables: Tables, spark: SparkSession
) -> None:
    name = "gold.checked"
    path = rs_tables.path(name)
    spark.sql(
        f"CREATE TABLE delta.`{path}` (id long NOT NULL, amount long, "
        "amount_x2 long GENERATED ALWAYS AS (amount * 2)) USING delta"
    )
    spark.sql(f"ALTER TABLE delta.`{path}` ADD CONSTRAINT positive CHECK (amount > 0)")
    tables = rs_tables if engine_name == "delta-rs" else ds_tables
    tables.append(name, spark.createDataFrame([(1, 5)], "id long, amount long"))
    bad = [
        (spark.createDataFrame([(2, -5)], "id long, amount long"), r"positive|CHECK"),
        (spark.createDataFrame([(None, 5)], "id long, amount long"), r"(?i)not null|NOT_NULL"),
        (
            spark.createDataFrame([(3, 5, 11)], "id long, amount long, amount_x2 long"),
            r"(?i)generat|amount_x2|CHECK",
        ),
    ]
    for df, message in bad:
        with pytest.raises(Exception, match=message) as failure:
            tables.append(name, df)
        if engine_name == "delta-rs":
            assert isinstance(failure.value, ConstraintViolationError)
    assert sorted(tuple(r) for r in tables.read(name).collect()) == [(1, 5, 10)]


def test_an_unknown_reader_feature_is_refused_with_a_clear_error(
    rs_tables: Tables, spark: SparkSession
) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(rs_tables.path("bronze.future"))
    (path / "_delta_log").mkdir(parents=True)
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int64())}), path / "part-0.parquet")
    schema = {"type": "struct", "fields": [{"name": "id", "type": "long", "nullable": True,
                                            "metadata": {}}]}  # fmt: skip
    actions = [
        {"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
                      "readerFeatures": ["someFutureFeature"],
                      "writerFeatures": ["someFutureFeature"]}},
        {"metaData": {"id": "t", "format": {"provider": "parquet", "options": {}},
                      "schemaString": json.dumps(schema), "partitionColumns": [],
                      "configuration": {}, "createdTime": 0}},
        {"add": {"path": "part-0.parquet", "partitionValues": {}, "dataChange": True,
                 "size": (path / "part-0.parquet").stat().st_size, "modificationTime": 0}},
    ]  # fmt: skip
    (path / "_delta_log" / f"{0:020d}.json").write_text("\n".join(json.dumps(a) for a in actions))
    with pytest.raises(UnsupportedTableFeatureError, match="someFutureFeature"):
        rs_tables.read("bronze.future")
    assert isinstance(rs_tables.engine, DeltaRsEngine)
