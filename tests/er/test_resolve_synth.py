"""The matcher against the generator's truth, on a small world (the F1 bar of issue 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.synth_adapter import SYNTH_MAPPING, write_synth_person_records
from pyspark.sql import SparkSession

from cardlake.er import evaluate_clusters, resolve_entities, to_person_records
from cardlake.er.evaluate import log_metrics_to_mlflow
from cardlake.synth import SynthParams, generate

SMALL_WORLD = SynthParams(seed=11, n_customers=300)
MIN_PAIRWISE_F1 = 0.98  # measured 0.99+ on this world; 0.997 on the default world


@pytest.mark.slow
def test_pairwise_f1_against_generator_truth(spark: SparkSession, tmp_path: Path) -> None:
    generate(landing_root=tmp_path / "landing", truth_root=tmp_path / "truth", params=SMALL_WORLD)
    records_path, truth_path = write_synth_person_records(
        tmp_path / "landing", tmp_path / "truth", tmp_path / "er"
    )
    raw_df = spark.read.parquet(str(records_path))
    truth_df = spark.read.parquet(str(truth_path))

    records_df = to_person_records(raw_df, mapping=SYNTH_MAPPING, dataset="synth")
    resolution = resolve_entities(spark, [records_df])
    entities_df = resolution.entities_df.cache()

    assert entities_df.count() == raw_df.count()
    assert entities_df.select("record_id").distinct().count() == raw_df.count()
    metrics = evaluate_clusters(entities_df, truth_df)
    assert metrics.records == truth_df.count()
    assert metrics.pairwise_precision >= MIN_PAIRWISE_F1, metrics
    assert metrics.pairwise_recall >= MIN_PAIRWISE_F1, metrics
    assert metrics.pairwise_f1 >= MIN_PAIRWISE_F1, metrics
    assert metrics.bcubed_f1 >= MIN_PAIRWISE_F1, metrics

    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_metrics_to_mlflow(
        metrics,
        experiment="er-test",
        run_name="synth-300",
        tracking_uri=uri,
        params={"threshold": resolution.threshold_match_probability, "seed": SMALL_WORLD.seed},
    )
    logged = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id).data.metrics
    assert logged["pairwise_precision"] == pytest.approx(metrics.pairwise_precision)
    assert logged["pairwise_recall"] == pytest.approx(metrics.pairwise_recall)
    assert logged["pairwise_f1"] == pytest.approx(metrics.pairwise_f1)
    entities_df.unpersist()
