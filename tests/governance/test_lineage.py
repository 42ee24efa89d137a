"""Lineage events in _ops.lineage, and the upstream graph printed from them."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import SparkSession

from cardlake.governance import lineage
from cardlake.tables import Tables


def test_runs_record_versions_column_lineage_and_the_graph(spark: SparkSession, rs_tables: Tables):
    t = rs_tables
    t.append("silver.transactions", spark.createDataFrame([(1,)], "x int"))
    t.append("silver.transactions", spark.createDataFrame([(2,)], "x int"))
    read_version = t.version("silver.transactions")
    with lineage.track(
        t, "gold", inputs=["silver.transactions"], outputs=["gold.customer_monthly_features"]
    ):
        t.append("gold.customer_monthly_features", spark.createDataFrame([(1,)], "x int"))
    with lineage.track(
        t, "kpis", inputs=["gold.customer_monthly_features"], outputs=["gold.kpi_monthly"]
    ):
        t.append("gold.kpi_monthly", spark.createDataFrame([(1,)], "x int"))
    with (
        pytest.raises(RuntimeError),
        lineage.track(t, "broken", inputs=["gold.kpi_monthly"], outputs=["gold.never"]),
    ):
        raise RuntimeError("the stage failed")

    rows = [r.asDict(recursive=True) for r in t.read(lineage.LINEAGE_TABLE).collect()]
    kinds = sorted((r["job_name"], r["event_type"]) for r in rows)
    assert kinds == [
        ("broken", "FAIL"),
        ("broken", "START"),
        ("gold", "COMPLETE"),
        ("gold", "START"),
        ("kpis", "COMPLETE"),
        ("kpis", "START"),
    ]
    done = next(r for r in rows if (r["job_name"], r["event_type"]) == ("gold", "COMPLETE"))
    assert read_version >= 1
    assert done["inputs"] == [{"name": "silver.transactions", "version": read_version}]
    assert done["outputs"] == [
        {
            "name": "gold.customer_monthly_features",
            "version": t.version("gold.customer_monthly_features"),
        }
    ]
    facets = json.loads(done["event"])["outputs"][0]["facets"]
    age_from = facets["columnLineage"]["fields"]["age"]["inputFields"]
    assert [(f["namespace"], f["name"], f["field"]) for f in age_from] == [
        ("cardlake", "silver.customer_snapshots", "date_of_birth")
    ]

    graph = lineage.upstream(rows, "gold.kpi_monthly")
    assert graph == {
        "gold.kpi_monthly": {"gold.customer_monthly_features"},
        "gold.customer_monthly_features": {"silver.transactions"},
        "silver.transactions": set(),
    }
    assert lineage.render(graph, "gold.kpi_monthly") == (
        "gold.kpi_monthly\n  <- gold.customer_monthly_features\n    <- silver.transactions"
    )


def test_a_dataset_reached_twice_is_printed_once_in_full():
    graph = {"g": {"a", "b"}, "a": {"s"}, "b": {"s"}, "s": set()}
    assert lineage.render(graph, "g") == "g\n  <- a\n    <- s\n  <- b\n    <- s (see above)"


def test_a_failure_the_fail_event_cannot_record_still_propagates_unchanged(
    rs_tables: Tables,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    recorded: list[str] = []

    def record(tables: Tables, run_event: lineage.RunEvent) -> None:
        state = run_event.eventType.value if run_event.eventType else "?"
        if state == "FAIL":
            raise OSError("the lake's disk is full")
        recorded.append(state)

    monkeypatch.setattr(lineage, "record", record)
    broke = RuntimeError("the stage failed")
    with pytest.raises(RuntimeError) as caught, lineage.track(rs_tables, "broken", inputs=[]):
        raise broke
    assert caught.value is broke
    assert recorded == ["START"]
    assert "broken failed, and its FAIL event could not be recorded" in caplog.text
