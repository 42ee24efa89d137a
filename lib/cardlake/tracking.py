"""MLflow glue: a serverless store under the lake, runs, data versions, registry and promotion.

Below every layer (silver logs entity-resolution runs, ml its models), so it imports none.

By default runs and the registry live in SQLite at ``<lake_root>/_ops/mlflow.db`` with
artifacts under ``<lake_root>/_ops/mlartifacts``; ``tracking.uri`` in ``conf/ml.yaml`` (for
example ``${MLFLOW_TRACKING_URI}``) points a team at a shared server instead.

Promotion: every trained candidate becomes a new version with the alias ``challenger``; it takes
``champion`` only when its out-of-time metric beats the champion's by more than
``min_improvement`` (or there is no champion yet). Scoring loads ``models:/<name>@champion``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class TrackingSettings:
    """``tracking:`` of ``conf/ml.yaml``: where runs and the registry live."""

    uri: str | None = None
    artifact_root: str | None = None
    experiment_prefix: str = "cardlake"
    min_improvement: float = 0.0


log = logging.getLogger("cardlake.ml")

CHAMPION = "champion"
CHALLENGER = "challenger"
METRIC_TAG = "promotion_metric"
VALUE_TAG = "promotion_value"


def tracking_uri(lake_root: str, settings: TrackingSettings) -> str:
    if settings.uri:
        return settings.uri
    root = lake_root.rstrip("/")
    if "://" in root:  # a cluster lake: SQLite needs a local file, so keep it beside the job
        raise ValueError(
            "tracking.uri is null but lake_root is a URI; set tracking.uri in conf/ml.yaml "
            "to a tracking server (or a local sqlite:/// path)"
        )
    Path(root, "_ops").mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root}/_ops/mlflow.db"


def artifact_root(lake_root: str, settings: TrackingSettings) -> str | None:
    """Where experiments keep artefacts; None lets a tracking server choose.

    A server started with ``--serve-artifacts`` proxies its artefact store over HTTP, which the
    driver and every executor reach with the tracking URI alone.
    """
    if settings.artifact_root:
        return settings.artifact_root
    if settings.uri and settings.uri.startswith(("http://", "https://")):
        return None
    path = Path(lake_root.rstrip("/"), "_ops", "mlartifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


@dataclass(frozen=True)
class Tracker:
    """One configured tracking store; ``experiment_prefix-<model>`` experiments."""

    uri: str
    artifacts: str | None
    prefix: str
    min_improvement: float

    @classmethod
    def configure(cls, lake_root: str, settings: TrackingSettings) -> Tracker:
        import mlflow

        uri = tracking_uri(lake_root, settings)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        return cls(
            uri=uri,
            artifacts=artifact_root(lake_root, settings),
            prefix=settings.experiment_prefix,
            min_improvement=settings.min_improvement,
        )

    def experiment_id(self, model: str) -> str:
        import mlflow

        name = f"{self.prefix}-{model}"
        found = mlflow.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = f"{self.artifacts}/{name}" if self.artifacts else None
        return mlflow.create_experiment(name, artifact_location=location)

    @contextlib.contextmanager
    def run(
        self, model: str, run_name: str, *, tags: Mapping[str, str] | None = None
    ) -> Iterator[Any]:
        """Starts a run in the model's experiment (nested runs share it)."""
        import mlflow

        active = mlflow.active_run()
        with mlflow.start_run(
            experiment_id=self.experiment_id(model),
            run_name=run_name,
            nested=active is not None,
            tags=dict(tags or {}),
        ) as run:
            yield run


def log_params(params: Mapping[str, Any], *, prefix: str = "") -> None:
    """Logs a (nested) mapping or dataclass as flat ``a.b.c`` params."""
    import mlflow

    flat = _flatten(params, prefix)
    items = list(flat.items())
    for start in range(0, len(items), 100):  # the store caps one batch
        mlflow.log_params(dict(items[start : start + 100]))


def _flatten(value: Any, prefix: str) -> dict[str, str]:
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    text = json.dumps(list(value)) if isinstance(value, tuple | list) else str(value)
    return {prefix: text[:6000]}


def log_metrics(metrics: Mapping[str, float]) -> None:
    import math

    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if not math.isnan(float(v))})


def log_data_versions(versions: Mapping[str, int]) -> None:
    """Records the Delta versions a run read, as params ``data.<table>.version`` and a tag."""
    import mlflow

    mlflow.log_params({f"data.{name}.version": str(v) for name, v in versions.items()})
    mlflow.set_tag("data_versions", json.dumps(dict(versions), sort_keys=True))


def log_frame(df: pd.DataFrame, file_name: str) -> None:
    """A small pandas table as a CSV artifact (reports, centroids, coefficients)."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, file_name)
        df.to_csv(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="tables")


def log_text(text: str, file_name: str) -> None:
    import mlflow

    mlflow.log_text(text, f"reports/{file_name}")


def log_spark_model(model: Any, sample_input: pd.DataFrame, sample_output: pd.DataFrame) -> str:
    """Logs a fitted Spark ML model with its signature; returns the model URI of the run."""
    import mlflow
    import mlflow.spark
    import pyspark
    from mlflow.models import infer_signature

    signature = infer_signature(sample_input, sample_output)
    info = mlflow.spark.log_model(
        model,
        artifact_path="model",
        signature=signature,
        pip_requirements=[f"pyspark=={pyspark.__version__}"],  # skips slow inference
    )
    return str(info.model_uri)


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    metric: str
    value: float
    champion_version: str | None
    champion_value: float | None
    promoted: bool


def register_and_promote(
    tracker: Tracker,
    *,
    name: str,
    model_uri: str,
    metric: str,
    value: float,
    tags: Mapping[str, str] | None = None,
) -> Promotion:
    """Registers ``model_uri`` as a new version of ``name`` and applies the promotion rule.

    The new version becomes ``challenger``; it also becomes ``champion`` when there is none or
    ``value`` (higher is better) beats the champion's recorded value by more than
    ``tracker.min_improvement``.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracker.uri, registry_uri=tracker.uri)
    with contextlib.suppress(MlflowException):
        client.create_registered_model(name)
    version = mlflow.register_model(model_uri, name, await_registration_for=0).version
    client.set_model_version_tag(name, version, METRIC_TAG, metric)
    client.set_model_version_tag(name, version, VALUE_TAG, repr(float(value)))
    for key, text in (tags or {}).items():  # what scoring needs besides the model
        client.set_model_version_tag(name, version, key, text)
    client.set_registered_model_alias(name, CHALLENGER, version)
    champion_version: str | None = None
    champion_value: float | None = None
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
        champion_version = str(champion.version)
        champion_value = float(champion.tags.get(VALUE_TAG, "nan"))
    except MlflowException:
        champion = None
    promoted = (
        champion is None
        or not (champion_value == champion_value)
        or (
            float(value) > champion_value + tracker.min_improvement  # type: ignore[operator]
        )
    )
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    log.info(
        "registry %s: version %s %s=%.4f vs champion %s (%s): %s",
        name,
        version,
        metric,
        value,
        champion_version,
        champion_value,
        "promoted to champion" if promoted else "kept as challenger",
    )
    return Promotion(
        name=name,
        version=str(version),
        metric=metric,
        value=float(value),
        champion_version=champion_version,
        champion_value=champion_value,
        promoted=promoted,
    )


def champion_uri(name: str) -> str:
    return f"models:/{name}@{CHAMPION}"


def load_champion(name: str) -> tuple[Any, str]:
    """The champion Spark model of ``name`` and its version."""
    import mlflow.spark
    from mlflow.tracking import MlflowClient

    version = MlflowClient().get_model_version_by_alias(name, CHAMPION).version
    return mlflow.spark.load_model(champion_uri(name)), str(version)


def version_tags(tracker: Tracker, name: str, version: str) -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracker.uri, registry_uri=tracker.uri)
    return dict(client.get_model_version(name, version).tags)
