"""Registering a lake's tables for SQL: what counts as a table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from deltalake import write_deltalake
from pyspark.sql import SparkSession

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
