"""Lineage recorded by the pipeline itself: every stage that needs the lake goes through
``run_stages``, which wraps it in ``lineage.track``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from cardlake.config import load_config
from cardlake.gold.schemas import CUSTOMER_MONTHLY_FEATURES
from cardlake.governance import lineage
from cardlake.pipeline import STAGES, Lake, Stage, run_stages, settings_for
from cardlake.silver.schemas import SCHEMAS as SILVER_SCHEMAS
from cardlake.tables import DeltaEngine, Tables
from tests.lake_fixture import BuiltLake


class StageBroke(RuntimeError):
    pass


def test_each_stage_records_start_then_complete_or_fail_with_what_it_wrote(
    spark: SparkSession,
    engine: DeltaEngine,
    tmp_path: Path,
) -> None:
    # Not registered for SQL: a third of this test's time went to registering its tables.
    tables = Tables(
        spark=spark, lake_root=str(tmp_path / "lake"), engine=engine, register_sql=False
    )
    one_row = spark.createDataFrame([(1,)], "x int")
    # Created first, so that each version is the same on both engines (delta-rs commits an
    # append to an absent table as a create and a write).
    tables.create("silver.transactions", one_row.schema)  # version 0
    tables.append("silver.transactions", one_row)  # version 1
    tables.create("bronze.unread", one_row.schema)  # in the lake, but no stage below reads it
    broke = StageBroke("the stage broke")

    def gold(t: Tables, settings: object, *, month: str | None) -> str:
        t.create("gold.customer_monthly_features", one_row.schema)  # version 0
        t.append("gold.customer_monthly_features", one_row)  # version 1
        return "built"

    def kpis(t: Tables, settings: object, *, month: str | None) -> None:
        t.create("gold.kpi_monthly", one_row.schema)  # version 0, written before it breaks
        raise broke

    lake = Lake(settings_for(load_config("test")), spark=spark, _tables=tables)
    gold_stage = Stage("gold", gold, "features", reads=("silver.*",))
    reader = Stage(
        "reader",
        lambda t, s, *, month: None,
        "reads only",
        reads=("gold.customer_monthly_features",),
    )
    outcome, _ = run_stages(lake, [gold_stage, reader], month="2024-03")
    assert outcome.result == "built"
    events_committed = tables.version(lineage.LINEAGE_TABLE)
    with pytest.raises(StageBroke) as caught:
        run_stages(
            lake,
            [
                Stage(
                    "kpis",
                    kpis,
                    "KPIs",
                    reads=(
                        "gold.customer_monthly_features",
                        "gold.absent",
                        "landing.card_transactions",
                    ),
                )
            ],
            month=None,
        )
    assert caught.value is broke  # the stage's own exception, not one from the FAIL event

    rows = {
        (r["job_name"], r["event_type"]): r.asDict(recursive=True)
        for r in tables.read(lineage.LINEAGE_TABLE).collect()
    }
    assert sorted(rows) == [
        ("gold", "COMPLETE"),
        ("gold", "START"),
        ("kpis", "FAIL"),
        ("kpis", "START"),
        ("reader", "COMPLETE"),
        ("reader", "START"),
    ]
    assert tables.version(lineage.LINEAGE_TABLE) == events_committed + 2  # two commits a stage
    assert rows["gold", "START"]["run_id"] == rows["gold", "COMPLETE"]["run_id"]
    assert rows["kpis", "START"]["run_id"] == rows["kpis", "FAIL"]["run_id"]
    assert rows["gold", "START"]["run_id"] != rows["kpis", "START"]["run_id"]

    silver_v1 = [{"name": "silver.transactions", "version": 1}]
    assert rows["gold", "START"]["inputs"] == silver_v1
    assert rows["gold", "START"]["outputs"] == []
    assert rows["gold", "COMPLETE"]["inputs"] == silver_v1
    assert rows["gold", "COMPLETE"]["outputs"] == [
        {"name": "gold.customer_monthly_features", "version": 1}
    ]
    facets = json.loads(rows["gold", "COMPLETE"]["event"])["outputs"][0]["facets"]
    assert facets["version"]["datasetVersion"] == "1"
    spend_from = facets["columnLineage"]["fields"]["spend_usd"]["inputFields"]
    assert [(f["name"], f["field"]) for f in spend_from] == [
        ("silver.transactions", "amount_usd"),
        ("silver.transactions", "state"),
        ("silver.transactions", "direction"),
    ]

    assert rows["reader", "COMPLETE"]["inputs"] == [
        {"name": "gold.customer_monthly_features", "version": 1}
    ]
    assert rows["reader", "COMPLETE"]["outputs"] == []  # it wrote nothing
    # gold.absent did not exist: not an input; landing files have no Delta version.
    assert rows["kpis", "FAIL"]["inputs"] == [
        {"name": "gold.customer_monthly_features", "version": 1},
        {"name": "landing.card_transactions", "version": None},
    ]
    assert rows["kpis", "FAIL"]["outputs"] == [{"name": "gold.kpi_monthly", "version": 0}]


def test_the_column_lineage_names_real_columns_of_gold_and_silver() -> None:
    features = dict(lineage.COLUMN_LINEAGE["gold.customer_monthly_features"])
    assert set(features) <= set(CUSTOMER_MONTHLY_FEATURES.fieldNames())
    assert {"spend_usd", "age", "service_contacts"} <= set(features)
    unknown = [
        f"{table}.{column}"
        for sources in features.values()
        for table, columns in sources
        for column in columns
        if column not in SILVER_SCHEMAS[table.removeprefix("silver.")].fieldNames()
    ]
    assert unknown == []


def test_every_input_a_stage_declares_is_in_the_built_lake(built_lake: BuiltLake) -> None:
    missing = []
    for stage in STAGES:
        for name in stage.reads:
            layer, _, table = name.partition(".")
            if layer == "landing":
                where = built_lake.root / "landing" / table
            elif table == "*":
                where = built_lake.lake_root / layer
            else:
                where = built_lake.lake_root / layer / table / "_delta_log"
            if not where.is_dir():
                missing.append(f"{stage.name}: {name}")
    assert missing == []


def test_the_built_lake_holds_every_stages_events_and_the_graph_prints(
    built_lake: BuiltLake,
) -> None:
    # The built lake is the whole pipeline's run (tests/lake_fixture.py), so its events are the
    # ones `make run` records: no stage is run again here.
    lake_root = built_lake.lake_root
    rows = DeltaTable(str(lake_root / "_ops" / "lineage")).to_pyarrow_table().to_pylist()
    assert sorted((r["job_name"], r["event_type"]) for r in rows) == [
        (stage, event)
        for stage in ("analytics", "bronze", "gold", "ml", "silver")
        for event in ("COMPLETE", "START")
    ]
    (done,) = [r for r in rows if r["job_name"] == "gold" and r["event_type"] == "COMPLETE"]
    outputs = {d["name"]: d["version"] for d in done["outputs"]}
    features_dir = lake_root / "gold" / "customer_monthly_features"
    # Nothing writes the features after gold: the version gold recorded is the table's latest.
    assert outputs["gold.customer_monthly_features"] == DeltaTable(str(features_dir)).version()
    assert not [name for name in outputs if not name.startswith(("gold.", "_ops."))]
    transactions = DeltaTable(str(lake_root / "silver" / "transactions")).version()
    assert {"name": "silver.transactions", "version": transactions} in done["inputs"]
    (features,) = [
        o
        for o in json.loads(done["event"])["outputs"]
        if o["name"] == "gold.customer_monthly_features"
    ]
    age_from = features["facets"]["columnLineage"]["fields"]["age"]["inputFields"]
    assert [(f["name"], f["field"]) for f in age_from] == [
        ("silver.customer_snapshots", "date_of_birth")
    ]

    # `make lineage TABLE=...` runs this module with --env; --lake-root points it at the lake.
    done_cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "cardlake.governance.lineage",
            "--env",
            "test",
            "--lake-root",
            str(lake_root),
            "gold.customer_monthly_features",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Its own words on failure (a CI run saw it die by SIGABRT with nothing else to go on).
    assert done_cli.returncode == 0, done_cli.stderr[-4000:]
    printed = done_cli.stdout.splitlines()
    assert printed[0] == "gold.customer_monthly_features"
    # Down to the landing files: features <- silver <- bronze <- landing (each expanded once).
    assert {
        "  <- silver.transactions",
        "  <- silver.customer_snapshots",
        "    <- bronze.card_transactions",
        "      <- landing.card_transactions",
    } <= set(printed)
