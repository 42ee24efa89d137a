"""Registering a lake's tables for SQL: what counts as a table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from deltalake import write_deltalake
from pyspark.sql import SparkSession

from cardlake.tables.base import TableError
from cardlake.tables.catalog import register_lake


def test_a_log_folder_without_a_commit_is_no_table_yet(
    spark: SparkSession, tmp_path: Path, clean_catalog: None
) -> None:
    # A table with a commit, and what a writer killed during a table's first commit leaves: its
    # data file and a log folder with nothing committed in it.
    write_deltalake(str(tmp_path / "gold" / "kept"), pd.DataFrame({"x": [1, None]}))
    killed = tmp_path / "gold" / "killed"
    (killed / "_delta_log" / "_staged_commits").mkdir(parents=True)
    (killed / "part-00000.snappy.parquet").write_bytes(b"PAR1")
    assert register_lake(spark, lake_root=str(tmp_path), engine="delta-spark") == ["gold.kept"]
    assert spark.sql("SELECT count(x) FROM gold.kept").first()[0] == 1


def test_registering_another_lake_points_the_names_at_it(
    spark: SparkSession, tmp_path: Path, clean_catalog: None
) -> None:
    # Two lakes opened in one session (a notebook, a test suite): the later registration wins,
    # and dropping the earlier entry leaves the earlier lake's files as they were.
    for lake, x in (("a", 1), ("b", 2)):
        write_deltalake(str(tmp_path / lake / "gold" / "t"), pd.DataFrame({"x": [x]}))
    assert register_lake(spark, lake_root=str(tmp_path / "a"), engine="delta-spark") == ["gold.t"]
    assert spark.sql("SELECT x FROM gold.t").first()[0] == 1
    register_lake(spark, lake_root=str(tmp_path / "b"), engine="delta-spark")
    assert spark.sql("SELECT x FROM gold.t").first()[0] == 2
    register_lake(spark, lake_root=str(tmp_path / "b"), engine="delta-spark")  # no change
    assert spark.sql("SELECT x FROM gold.t").first()[0] == 2
    assert spark.read.format("delta").load(str(tmp_path / "a" / "gold" / "t")).first()[0] == 1


def test_a_name_the_catalog_holds_for_something_else_is_not_replaced(
    spark: SparkSession, tmp_path: Path, clean_catalog: None
) -> None:
    # A user's own view (or managed table) under a layer's name: left alone, and said why.
    write_deltalake(str(tmp_path / "gold" / "t"), pd.DataFrame({"x": [1]}))
    spark.sql("CREATE DATABASE IF NOT EXISTS gold")
    spark.sql("CREATE VIEW gold.t AS SELECT 7 AS x")
    with pytest.raises(TableError, match=r"gold\.t: the SQL catalog holds a view of that name"):
        register_lake(spark, lake_root=str(tmp_path), engine="delta-spark")
    assert spark.sql("SELECT x FROM gold.t").first()[0] == 7
