"""make maintain: three small files become one, old ones go under a zero retention."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pyspark.sql import SparkSession

from cardlake.governance.maintenance import maintain
from cardlake.governance.settings import LAKE_LAYERS, load_governance
from cardlake.tables import Tables


def _data_files(tables: Tables, name: str) -> list[Path]:
    return sorted(Path(tables.path(name)).rglob("*.parquet"))


def test_compacts_then_vacuums_with_the_layers_retention(spark: SparkSession, rs_tables: Tables):
    for i in range(3):
        rs_tables.append("gold.t", spark.createDataFrame([(i, f"v{i}")], "id int, v string"))
    rs_tables.append("silver.s", spark.createDataFrame([(9, None)], "id int, v string"))
    assert len(_data_files(rs_tables, "gold.t")) == 3
    settings = load_governance("test")
    zero = dataclasses.replace(settings, retention_hours=dict.fromkeys(LAKE_LAYERS, 0))

    done = maintain(rs_tables, zero, only="gold.t")

    assert [(d.table, d.retention_hours, d.files_removed) for d in done] == [("gold.t", 0, 3)]
    assert len(_data_files(rs_tables, "gold.t")) == 1
    assert sorted(tuple(r) for r in rs_tables.read("gold.t").collect()) == [
        (0, "v0"),
        (1, "v1"),
        (2, "v2"),
    ]
    assert len(_data_files(rs_tables, "silver.s")) == 1  # not asked for: untouched
    # The default retention keeps a week of gold versions.
    assert settings.retention_hours["gold"] == 168
