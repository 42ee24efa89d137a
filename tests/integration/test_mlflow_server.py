"""MLflow on a real tracking server over HTTP: runs, a logged Spark model in the server's proxied
artefact store, registry aliases and the promotion rule, and ``models:/<name>@champion``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler

from cardlake.ml import tracking
from cardlake.ml.settings import TrackingSettings, load_ml_settings
from tests.infra.services import free_port, load_infra

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")  # stopped when this file's tests are done
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``mlflow server`` (SQLite backend, proxied artefacts) on a free loopback port."""
    server_module = load_infra("mlflow/server.py")
    store = tmp_path_factory.mktemp("mlflow-server")
    server = server_module.start(store, port=free_port())
    try:
        yield server
    finally:
        server_module.stop(server)


@pytest.fixture
def remote_tracker(mlflow_server: Any, tmp_path: Path) -> Iterator[tracking.Tracker]:
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    settings = TrackingSettings(uri=mlflow_server.url)
    yield tracking.Tracker.configure(str(tmp_path / "lake"), settings)
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


def test_the_cluster_profile_tracks_to_the_server_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    settings = load_ml_settings("cluster")
    assert settings.tracking.uri == "http://127.0.0.1:5999"
    assert tracking.artifact_root("s3a://bank/lake", settings.tracking) is None


def test_runs_models_and_aliases_over_http(
    spark: Any, mlflow_server: Any, remote_tracker: tracking.Tracker, tmp_path: Path
) -> None:
    assert remote_tracker.uri.startswith("http://127.0.0.1:")
    # Separable on x: below 0.5 is class 0, above is class 1.
    df = spark.createDataFrame(
        [(0.0, 0), (0.1, 0), (0.2, 0), (0.8, 1), (0.9, 1), (1.0, 1)], "x double, label int"
    )
    model = Pipeline(
        stages=[
            VectorAssembler(inputCols=["x"], outputCol="features"),
            LogisticRegression(maxIter=50, regParam=0.0),
        ]
    ).fit(df)
    promotions = []
    for value in (0.80, 0.75):  # first becomes champion; a worse one stays challenger
        with remote_tracker.run("server", f"run-{value}") as run:
            tracking.log_params({"seed": 1})
            tracking.log_metrics({"oot_auc": value})
            uri = tracking.log_spark_model(
                model, pd.DataFrame({"x": [0.5]}), pd.DataFrame({"prediction": [1.0]})
            )
            promotions.append(
                tracking.register_and_promote(
                    remote_tracker,
                    name="server-model",
                    model_uri=uri,
                    metric="oot_auc",
                    value=value,
                    tags={"threshold": "0.5"},
                )
            )
    assert [p.promoted for p in promotions] == [True, False]

    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    assert str(client.get_model_version_by_alias("server-model", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("server-model", "challenger").version) == "2"
    logged = client.get_run(run.info.run_id)
    assert logged.data.metrics["oot_auc"] == 0.75
    # Artefacts went through the server into its own store, not to a client-side folder.
    assert logged.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert not (tmp_path / "lake").exists()
    stored = list((mlflow_server.log.parent / "artifacts").rglob("MLmodel"))
    assert len(stored) >= 2, stored

    champion, version = tracking.load_champion("server-model")
    assert version == "1"
    scored = {
        row["x"]: row["prediction"]
        for row in champion.transform(
            spark.createDataFrame([(0.05,), (0.95,)], "x double")
        ).collect()
    }
    assert scored == {0.05: 0.0, 0.95: 1.0}
