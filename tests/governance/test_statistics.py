"""Personal values stay out of the Delta log: file statistics keep unclassified columns only.

Delta copies each file's minimum and maximum per column into ``_delta_log``, which VACUUM never
removes. Tables created through the governed layer list only ``none``-classified columns in
``delta.dataSkippingStatsColumns``; both engines honour it on writes, MERGE, DELETE and
compaction.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from cardlake.governance.settings import load_governance
from cardlake.governance.statistics import (
    CLASSIFICATION_KEY,
    NUM_INDEXED,
    STATS_COLUMNS,
    statistics_properties,
    table_policy,
)
from cardlake.tables import Tables
from cardlake.tables.base import DeltaEngine
from tests.lake_fixture import BuiltLake

GOVERNANCE = load_governance("test")
SCHEMA = T.StructType(
    [
        T.StructField("customer_key", T.StringType()),  # none
        T.StructField("email", T.StringType()),  # personal
        T.StructField("first_name", T.StringType()),  # personal
        T.StructField("date_of_birth", T.DateType()),  # personal
        T.StructField("national_id", T.StringType()),  # personal
        T.StructField("spend_usd", T.DoubleType()),  # none
        T.StructField("is_current", T.BooleanType()),  # none, but Delta keeps no min/max of it
        T.StructField("mystery_column", T.StringType()),  # classified nowhere: fail closed
        T.StructField("month", T.StringType()),  # the partition column
    ]
)
ROWS = [
    (
        "CK0000000001",
        "aaron.first@mail.test",
        "Aaron",
        dt.date(1931, 1, 2),
        "SYN-GB-000000001-D",
        10.5,
        True,
        "mystery-value-1",
        "2025-01",
    ),
    (
        "CK0000000002",
        "zoe.last@mail.test",
        "Zoe",
        dt.date(2001, 12, 30),
        "SYN-GB-999999999-X",
        99.0,
        False,
        "mystery-value-2",
        "2025-01",
    ),
    (
        "CK0000000003",
        "mid.dle@mail.test",
        "Mia",
        dt.date(1970, 6, 15),
        "SYN-FR-000001234-J",
        42.0,
        True,
        "mystery-value-3",
        "2025-02",
    ),
]
PERSONAL = [
    "aaron.first@mail.test",
    "zoe.last@mail.test",
    "mid.dle@mail.test",
    "Aaron",
    "Zoe",
    "Mia",
    "1931-01-02",
    "2001-12-30",
    "1970-06-15",
    "mystery-value-1",
    "mystery-value-2",
    "mystery-value-3",
    "SYN-GB-000000001-D",
    "SYN-GB-999999999-X",
    "SYN-FR-000001234-J",
]


def test_only_columns_classified_none_get_statistics():
    # what the test relies on
    assert GOVERNANCE.rule("gold.x", "email").classification == "personal"
    assert GOVERNANCE.rule("gold.x", "customer_key").classification == "none"
    assert GOVERNANCE.rule("gold.x", "mystery_column") is None
    assert statistics_properties(GOVERNANCE, "gold.x", SCHEMA, ("month",)) == {
        STATS_COLUMNS: "customer_key,spend_usd"
    }
    personal_only = T.StructType([SCHEMA["email"], SCHEMA["month"]])
    assert statistics_properties(GOVERNANCE, "gold.x", personal_only, ("month",)) == {
        NUM_INDEXED: "0"
    }


def _log_stats(table_dir: Path) -> list[dict[str, object]]:
    """Every ``add`` action's statistics in the log, from JSON commits and checkpoints."""
    found: list[dict[str, object]] = []
    for commit in sorted((table_dir / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            add = json.loads(line).get("add") if line.strip() else None
            if add and add.get("stats"):
                found.append(json.loads(add["stats"]))
    for checkpoint in sorted((table_dir / "_delta_log").glob("*.checkpoint*.parquet")):
        for add in pq.read_table(checkpoint).column("add").to_pylist():
            if add and add.get("stats"):
                found.append(json.loads(add["stats"]))
    return found


def _log_text(table_dir: Path) -> str:
    parts = []
    for path in sorted((table_dir / "_delta_log").rglob("*")):
        if path.suffix == ".parquet":
            parts += [str(v) for col in pq.read_table(path).to_pydict().values() for v in col]
        elif path.is_file():
            parts.append(path.read_text(errors="replace"))
    return "\n".join(parts)


def test_personal_values_never_reach_the_log(
    spark: SparkSession, engine: DeltaEngine, tmp_path: Path, clean_catalog: None
):
    tables = Tables(
        spark=spark,
        lake_root=str(tmp_path / "lake"),
        engine=engine,
        policy=table_policy(GOVERNANCE),
    )
    df = spark.createDataFrame(ROWS, SCHEMA)
    tables.append("gold.people", df.where("month = '2025-01'"), partition_by=("month",))
    if engine.name == "delta-spark":
        # The write that creates the table carries its properties: one commit, not create and
        # write (delta-rs creates first: a create there is a file write, not a Spark job).
        assert [h["version"] for h in tables.history("gold.people")] == [0]
    tables.append("gold.people", df.where("month = '2025-02'"), partition_by=("month",))
    tables.merge("gold.people", df.where("customer_key = 'CK0000000003'"), keys=["customer_key"])
    tables.delete("gold.people", "customer_key = 'CK0000000002'")
    tables.overwrite("gold.people", tables.read("gold.people"), partition_by=("month",))
    tables.optimize("gold.people")
    table_dir = tmp_path / "lake" / "gold" / "people"

    stats = _log_stats(table_dir)
    assert stats, "no statistics at all: the test would prove nothing"
    for entry in stats:
        for kind in ("minValues", "maxValues"):
            assert set(entry.get(kind, {})) <= {"customer_key", "spend_usd"}, entry
    assert any(entry.get("minValues", {}).get("customer_key") for entry in stats)
    text = _log_text(table_dir)
    assert [v for v in PERSONAL if v in text] == []
    # Each column carries its dictionary entry; the unclassified one carries none.
    fields = {f.name: f.metadata for f in DeltaTable(str(table_dir)).schema().fields}
    assert fields["email"][CLASSIFICATION_KEY] == "personal"
    assert fields["email"]["comment"] == GOVERNANCE.rule("gold.people", "email").description
    assert fields["customer_key"][CLASSIFICATION_KEY] == "none"
    assert CLASSIFICATION_KEY not in fields["mystery_column"]
    # Nothing lost: the rows read back as written (less the deleted one).
    back = sorted(tuple(r) for r in tables.read("gold.people").collect())
    assert back == sorted(r for r in ROWS if r[0] != "CK0000000002")


@pytest.mark.slow
def test_the_built_lake_logs_statistics_of_unclassified_columns_only(built_lake: BuiltLake):
    tables_seen, with_stats, leaks = 0, 0, []
    for log in sorted(built_lake.lake_root.glob("*/*/_delta_log")):
        table_dir = log.parent
        name = f"{table_dir.parent.name}.{table_dir.name}"
        tables_seen += 1
        for entry in _log_stats(table_dir):
            for kind in ("minValues", "maxValues"):
                columns = set(entry.get(kind, {}))
                with_stats += bool(columns)
                leaks += [
                    f"{name}.{c}"
                    for c in sorted(columns)
                    if (rule := GOVERNANCE.rule(name, c)) is None or rule.classification != "none"
                ]
    assert tables_seen >= 40 and with_stats > 0
    assert sorted(set(leaks)) == []


@pytest.mark.slow
def test_every_column_of_the_built_lake_is_described_in_its_delta_schema(built_lake: BuiltLake):
    undescribed, tables_seen = [], 0
    for log in sorted(built_lake.lake_root.glob("*/*/_delta_log")):
        table_dir = log.parent
        name = f"{table_dir.parent.name}.{table_dir.name}"
        tables_seen += 1
        for f in DeltaTable(str(table_dir)).schema().fields:
            rule = GOVERNANCE.rule(name, f.name)
            if (
                rule is None
                or f.metadata.get(CLASSIFICATION_KEY) != rule.classification
                or not f.metadata.get("comment", "").startswith(rule.description)
            ):
                undescribed.append(f"{name}.{f.name}")
    assert tables_seen >= 40
    assert undescribed == []
