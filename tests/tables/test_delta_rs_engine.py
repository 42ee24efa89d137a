"""The embedded engine's own promises: interoperability, crash safety, concurrency, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import SparkSession

from cardlake.tables import (
    TableError,
    Tables,
    UnsupportedTableFeatureError,
)
from cardlake.tables.delta_rs import STAGING_DIR

HERE = Path(__file__).parent
INLINE_DV = "wi5b=000010000siXQKl0rr91000f"  # an inline deletion vector delta-rs cannot decode
MIXED = (
    "id long, name string, amount decimal(12,2), booked date, at timestamp, "
    "ok boolean, score double, month string"
)


def _mixed_rows() -> list[tuple]:
    return [
        (
            1,
            "Ana",
            Decimal("10.50"),
            date(2025, 6, 1),
            datetime(2025, 6, 1, 8, 30, tzinfo=UTC),
            True,
            0.5,
            "2025-06",
        ),
        (
            2,
            "Bo: [x]*",
            Decimal("-3.00"),
            date(2025, 5, 31),
            datetime(2025, 5, 31, 23, 59, 59, tzinfo=UTC),
            False,
            None,
            "2025-05",
        ),
        (3, None, None, None, None, None, None, None),
    ]


def test_our_writes_read_back_identically_with_deltalake_alone(
    rs_tables: Tables, spark: SparkSession
) -> None:
    df = spark.createDataFrame(_mixed_rows(), MIXED)
    rs_tables.append("silver.mixed", df, partition_by=["month"])
    arrow = DeltaTable(rs_tables.path("silver.mixed")).to_pyarrow_table()
    got = sorted(arrow.to_pylist(), key=lambda r: r["id"])
    expected = [dict(zip(df.columns, r, strict=True)) for r in _mixed_rows()]
    assert got == expected


def test_tables_written_by_deltalake_read_back_identically(
    rs_tables: Tables, spark: SparkSession, tmp_path: Path
) -> None:
    path = rs_tables.path("bronze.from_rs")
    data = pa.table(
        {
            "id": pa.array([1, 2, 3, 4], pa.int64()),
            "day": pa.array([date(2025, 6, 1), date(2025, 6, 1), date(2025, 6, 2), None]),
            "bucket": pa.array([7, 8, 7, None], pa.int32()),
            "label": ["a", "b", None, "d"],
        }
    )
    write_deltalake(path, data, partition_by=["day", "bucket"])
    expected = spark.createDataFrame(
        [
            (1, date(2025, 6, 1), 7, "a"),
            (2, date(2025, 6, 1), 8, "b"),
            (3, date(2025, 6, 2), 7, None),
            (4, None, None, "d"),
        ],
        "id long, day date, bucket int, label string",
    )
    got = rs_tables.read("bronze.from_rs").select("id", "day", "bucket", "label")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    assert dict(got.dtypes)["day"] == "date" and dict(got.dtypes)["bucket"] == "int"
    pruned = rs_tables.read("bronze.from_rs", partitions={"day": date(2025, 6, 1), "bucket": 7})
    assert [r.id for r in pruned.collect()] == [1]


def test_a_write_that_dies_before_commit_leaves_the_table_unchanged(
    rs_tables: Tables, spark: SparkSession, tmp_path: Path
) -> None:
    name = "silver.crash"
    base = spark.createDataFrame([(i, "2025-06") for i in range(5)], "id long, month string")
    rs_tables.append(name, base, partition_by=["month"])
    version = rs_tables.version(name)
    path = rs_tables.path(name)
    child = subprocess.run(
        [sys.executable, str(HERE / "crash_writer.py"), path, "die-before-commit"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert child.returncode == 9, child.stderr[-2000:]
    table_dir = Path(path)
    on_disk = {p for p in table_dir.rglob("*.parquet") if STAGING_DIR not in p.parts}
    referenced = {table_dir / f for f in _logged_files(path)}
    assert len(on_disk - referenced) > 0, "the child should have left orphan files behind"
    assert rs_tables.version(name) == version
    assert_df_equality(rs_tables.read(name), base, ignore_row_order=True, ignore_nullable=True)
    rs_tables.vacuum(name, retention_hours=0)
    on_disk = {p for p in table_dir.rglob("*.parquet")}
    assert on_disk == referenced
    assert rs_tables.read(name).count() == 5


@pytest.mark.slow
def test_a_write_killed_mid_way_leaves_no_partial_rows(
    rs_tables: Tables, spark: SparkSession
) -> None:
    name = "silver.killed"
    base = spark.createDataFrame([(i, "2025-06") for i in range(5)], "id long, month string")
    rs_tables.append(name, base, partition_by=["month"])
    version = rs_tables.version(name)
    path = rs_tables.path(name)
    child = subprocess.Popen(
        [sys.executable, str(HERE / "crash_writer.py"), path, "slow-write"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    staging = Path(path) / STAGING_DIR
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            if staging.is_dir() and any(staging.rglob("*.parquet")):
                break
            if child.poll() is not None:
                pytest.fail(f"writer ended early: {child.stderr.read()[-2000:]!r}")  # type: ignore[union-attr]
            time.sleep(0.2)
        else:
            pytest.fail("no Parquet file appeared in the staging folder in time")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    assert rs_tables.version(name) == version
    assert_df_equality(rs_tables.read(name), base, ignore_row_order=True, ignore_nullable=True)
    rs_tables.vacuum(name, retention_hours=0)
    assert not any(staging.rglob("*.parquet"))


def _logged_files(path: str) -> set[str]:
    actions = pa.table(DeltaTable(path).get_add_actions(flatten=True))
    from urllib.parse import unquote

    return {unquote(p) for p in actions.column("path").to_pylist()}


def _hand_written_table(
    path: Path, *, protocol: dict, configuration: dict, add: dict, physical: str | None = None
) -> None:
    # A Delta log written by hand, to present features delta-rs cannot write itself.
    (path / "_delta_log").mkdir(parents=True)
    metadata = (
        {"delta.columnMapping.id": 1, "delta.columnMapping.physicalName": physical}
        if physical
        else {}
    )
    schema = {
        "type": "struct",
        "fields": [{"name": "id", "type": "long", "nullable": True, "metadata": metadata}],
    }
    data = pa.table({physical or "id": pa.array([1, 2], pa.int64())})
    import pyarrow.parquet as pq

    pq.write_table(data, path / "part-0.parquet")
    actions = [
        {"protocol": protocol},
        {
            "metaData": {
                "id": "t",
                "format": {"provider": "parquet", "options": {}},
                "schemaString": json.dumps(schema),
                "partitionColumns": [],
                "configuration": configuration,
                "createdTime": 0,
            }
        },
        {
            "add": {
                "path": "part-0.parquet",
                "partitionValues": {},
                "size": (path / "part-0.parquet").stat().st_size,
                "modificationTime": 0,
                "dataChange": True,
                **add,
            }
        },
    ]
    (path / "_delta_log" / f"{0:020d}.json").write_text("\n".join(json.dumps(a) for a in actions))


def test_deletion_vectors_delta_rs_cannot_decode_are_refused_not_misread(
    rs_tables: Tables, tmp_path: Path
) -> None:
    # Readable deletion vectors are applied (tests/tables/test_interop.py); a corrupt one fails.
    path = Path(rs_tables.path("bronze.dv"))
    _hand_written_table(
        path,
        protocol={
            "minReaderVersion": 3,
            "minWriterVersion": 7,
            "readerFeatures": ["deletionVectors"],
            "writerFeatures": ["deletionVectors"],
        },
        configuration={"delta.enableDeletionVectors": "true"},
        add={
            "deletionVector": {
                "storageType": "i",
                "pathOrInlineDv": INLINE_DV,
                "offset": 1,
                "sizeInBytes": 36,
                "cardinality": 1,
            }
        },
    )
    with pytest.raises(UnsupportedTableFeatureError, match="deletion vectors"):
        rs_tables.read("bronze.dv")


def test_column_mapping_by_name_reads_the_physical_columns(
    rs_tables: Tables, spark: SparkSession
) -> None:
    path = Path(rs_tables.path("bronze.cm"))
    _hand_written_table(
        path,
        protocol={"minReaderVersion": 2, "minWriterVersion": 5},
        configuration={"delta.columnMapping.mode": "name", "delta.columnMapping.maxColumnId": "1"},
        add={},
        physical="col-5f1d",
    )
    assert sorted(r.id for r in rs_tables.read("bronze.cm").collect()) == [1, 2]


def test_column_mapping_by_field_id_is_refused_not_misread(rs_tables: Tables) -> None:
    path = Path(rs_tables.path("bronze.cm"))
    _hand_written_table(
        path,
        protocol={"minReaderVersion": 2, "minWriterVersion": 5},
        configuration={"delta.columnMapping.mode": "id", "delta.columnMapping.maxColumnId": "1"},
        add={},
        physical="col-5f1d",
    )
    with pytest.raises(UnsupportedTableFeatureError, match="column mapping mode 'id'"):
        rs_tables.read("bronze.cm")


def test_a_log_entry_for_a_missing_file_fails_the_read_loudly(
    rs_tables: Tables, spark: SparkSession
) -> None:
    name = "silver.lost"
    rs_tables.append(
        name, spark.createDataFrame([(1, "a"), (2, "b")], "id long, k string"), partition_by=["k"]
    )
    victim = next(Path(rs_tables.path(name)).rglob("*.parquet"))
    victim.unlink()
    with pytest.raises(TableError, match="do not exist"):
        rs_tables.read(name)


def test_partition_values_come_from_the_log_not_the_folder_names(
    rs_tables: Tables, spark: SparkSession
) -> None:
    # Files in flat folders (as some writers lay them out): only the log knows the values.
    import pyarrow.parquet as pq
    from deltalake.transaction import AddAction

    path = Path(rs_tables.path("bronze.flat"))
    DeltaTable.create(
        str(path),
        schema=pa.schema([("id", pa.int64()), ("day", pa.date32())]),
        partition_by=["day"],
    )
    adds = []
    for i, day in enumerate(["2025-06-01", "2025-06-02"]):
        name = f"data-{i}.parquet"
        pq.write_table(pa.table({"id": pa.array([i], pa.int64())}), path / name)
        adds.append(
            AddAction(
                name,
                (path / name).stat().st_size,
                {"day": day},
                0,
                True,
                json.dumps({"numRecords": 1}),
            )
        )
    table = DeltaTable(str(path))
    table.create_write_transaction(adds, "append", table.schema(), partition_by=["day"])
    expected = spark.createDataFrame(
        [(0, date(2025, 6, 1)), (1, date(2025, 6, 2))], "id long, day date"
    )
    assert_df_equality(
        rs_tables.read("bronze.flat"), expected, ignore_row_order=True, ignore_nullable=True
    )
