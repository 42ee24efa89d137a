"""The whole ML stage on small synthetic gold features and silver transactions."""

from __future__ import annotations

import threading

import mlflow
import pytest

from cardlake.ml import job, run_all
from cardlake.threads import in_parallel
from tests.ml import fakes


def test_two_models_at_once_each_label_their_own_jobs(spark):
    # Both threads set their model's name before either reads it: with one Properties object
    # shared between the pool's threads (pyspark's default), both would read the later name.
    both_set = threading.Barrier(2, timeout=60)
    both_read = threading.Barrier(2, timeout=60)

    def label(name: str) -> str | None:
        with job.model_jobs(spark, name):
            both_set.wait()
            seen = spark.sparkContext.getLocalProperty(job.MODEL_PROPERTY)
            both_read.wait()
        return seen

    assert in_parallel(label, ["fraud", "segmentation"], threads=2) == ["fraud", "segmentation"]
    assert spark.sparkContext.getLocalProperty(job.MODEL_PROPERTY) is None


@pytest.mark.slow
def test_run_all_trains_registers_and_writes_gold(spark, cfg, rs_tables, tmp_path):
    from cardlake.config import load_config

    lake_cfg = load_config(
        "test",
        overrides={
            "paths.lake_root": rs_tables.lake_root,
            "paths.truth_root": str(tmp_path / "no-truth"),
            "paths.landing_root": str(tmp_path / "landing"),
        },
    )
    rs_tables.overwrite(
        "gold.customer_monthly_features", fakes.features_df(spark), partition_by=["month"]
    )
    rs_tables.overwrite("silver.transactions", fakes.transactions_df(spark), partition_by=["month"])
    # Segmentation reads behaviour from gold's fact table; the silver columns it uses are the same.
    rs_tables.overwrite(
        "gold.fact_transactions", fakes.transactions_df(spark), partition_by=["month"]
    )
    previous = mlflow.get_tracking_uri()
    try:
        # Propensity needs gold.fact_product_usage, which the fakes do not hold: the built
        # lake's test (tests/ml/test_propensity.py) covers it.
        only = ["segmentation", "engagement", "fraud", "risk"]
        results = run_all(spark, lake_cfg, tables=rs_tables, only=only)
        # Run again: an unsupervised and a supervised model, not all four (that took 2.5 of
        # the test's 5 minutes); engagement and risk fit through fraud's fit_classifier.
        again = run_all(spark, lake_cfg, tables=rs_tables, only=["segmentation", "fraud"])
    finally:
        mlflow.set_tracking_uri(previous)
    # Seeds everywhere: the same data gives the same metrics (timings and the promotion
    # decision aside: the second model meets a champion the first did not).
    assert set(again) == {"segmentation", "fraud"}
    for model in again:
        metrics = results[model]
        varying = {k for k in metrics if k.endswith("seconds") or k == "promoted"}
        assert set(metrics) == set(again[model]), model
        for name in sorted(set(metrics) - varying):
            assert again[model][name] == pytest.approx(metrics[name], rel=1e-9, abs=1e-12), (
                model,
                name,
            )
        assert again[model]["promoted"] == 0.0, model  # not better than itself
    assert set(results) == {"segmentation", "engagement", "fraud", "risk"}
    for table in (
        "customer_segments",
        "engagement_scores",
        "experiment_assignment",
        "fraud_alerts",
        "customer_risk",
    ):
        assert rs_tables.exists(f"gold.{table}"), table
    assert results["engagement"]["gbt_oot_auc"] > 0.7
    assert results["fraud"]["gbt_test_auc"] > 0.8


def _stage_with_fakes(monkeypatch, cfg, runners, *, models_at_once=2):
    """The stage's scheduling around fake models: no Spark, no MLflow, no quality suites."""
    import dataclasses
    from types import SimpleNamespace

    from cardlake.config import Settings
    from cardlake.ml import job
    from cardlake.ml.settings import MlSettings, load_ml_settings

    monkeypatch.setattr(job, "RUNNERS", runners)
    monkeypatch.setattr(job.tracking.Tracker, "configure", classmethod(lambda cls, *a: None))
    monkeypatch.setattr(job, "check_tables", lambda *a: [])
    ml = dataclasses.replace(load_ml_settings("test"), models_at_once=models_at_once)
    settings = Settings(config=cfg, sections={MlSettings: ml})
    return lambda: job.run(SimpleNamespace(spark=None), settings)


def test_models_train_two_at_a_time_longest_first_and_propensity_waits_for_segments(
    monkeypatch, cfg
):
    import threading

    events: list[str] = []
    segmentation_started = threading.Event()

    def fake(name):
        def runner(*args, **kwargs):
            events.append(f"start {name}")
            if name == "segmentation":
                segmentation_started.set()
            if name == "fraud":  # only returns if segmentation trains beside it
                assert segmentation_started.wait(timeout=30), "segmentation did not start"
            events.append(f"end {name}")
            return {"value": float(len(name))}

        return runner

    names = ["segmentation", "engagement", "fraud", "risk", "propensity"]
    results = _stage_with_fakes(monkeypatch, cfg, {n: fake(n) for n in names})()
    assert list(results) == names  # the stage's order, whatever order they trained in
    assert {n: results[n]["value"] for n in names} == {n: float(len(n)) for n in names}
    assert all(results[n]["wall_seconds"] >= 0.0 for n in names)
    starts = [e.removeprefix("start ") for e in events if e.startswith("start ")]
    # the longest and the chain propensity waits on go first; which of the two threads records
    # its start first is the scheduler's choice (the order itself is asserted one at a time below)
    assert set(starts[:2]) == {"fraud", "segmentation"}
    assert events.index("start segmentation") < events.index("end fraud")
    assert events.index("end segmentation") < events.index("start propensity")


def test_a_failed_model_stops_the_ones_not_started_and_is_raised(monkeypatch, cfg):
    ran: list[str] = []

    def fake(name, fails=False):
        def runner(*args, **kwargs):
            ran.append(name)
            if fails:
                raise ValueError(f"{name} broke")
            return {}

        return runner

    runners = {
        "segmentation": fake("segmentation"),
        "engagement": fake("engagement", fails=True),
        "fraud": fake("fraud"),
        "risk": fake("risk"),
    }
    with pytest.raises(ValueError, match="engagement broke"):
        _stage_with_fakes(monkeypatch, cfg, runners, models_at_once=1)()
    assert ran == ["fraud", "segmentation", "engagement"]  # risk, after it, never started


def test_propensity_does_not_run_on_the_segments_of_a_failed_segmentation(monkeypatch, cfg):
    ran: list[str] = []

    def segmentation(*args, **kwargs):
        raise ValueError("segmentation broke")

    def propensity(*args, **kwargs):
        ran.append("propensity")
        return {}

    runners = {"segmentation": segmentation, "propensity": propensity}
    with pytest.raises(ValueError, match="segmentation broke"):
        _stage_with_fakes(monkeypatch, cfg, runners)()
    assert ran == []
