"""The ML stage: ``run(tables, settings, *, month)`` trains, registers and scores every model.

Each model module has one entry, ``run_<model>(spark, cfg, *, tables, settings, tracker)``; this
stage points MLflow at the configured store once and calls them ``models_at_once`` at a time,
each in its own thread (a model that reads another's table waits for it). ``run_all`` and the
``run_<model>(spark, cfg)`` functions remain for notebooks and tests that hold a session and a
``Config`` rather than the harness's ``Settings``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from pyspark.sql import SparkSession

from cardlake.config import Config, ConfigError, Settings
from cardlake.errors import JobFailed
from cardlake.ml import engagement, experiment, fraud, propensity, risk, segmentation, tracking
from cardlake.ml.settings import MlSettings
from cardlake.quality.layers import check_tables
from cardlake.tables import Tables
from cardlake.threads import in_parallel

log = logging.getLogger("cardlake.ml")

ModelRunner = Callable[..., dict[str, float]]
RUNNERS: dict[str, ModelRunner] = {
    "segmentation": segmentation.run_segmentation,
    "engagement": engagement.run_engagement,
    "fraud": fraud.run_fraud,
    "risk": risk.run_risk,
    "propensity": propensity.run_propensity,
}
MODELS = tuple(RUNNERS)
MODEL_PROPERTY = "cardlake.model"  # a Spark local property: the model a job trains
# A model that reads a table another model writes starts once that model has finished:
# propensity ranks campaign targets by the latest month's segments.
AFTER: dict[str, str] = {"propensity": "segmentation"}
# The order the threads take the models in: the longest (fraud) first, then the short chain of
# segmentation and propensity beside it, so that two models are training until near the end.
# In RUNNERS order, propensity (waiting for segmentation, ~2 minutes) was taken last and trained
# alone for its whole length. A waited-for model still comes before the model waiting for it.
START_ORDER = ("fraud", "segmentation", "propensity", "engagement", "risk")
TABLES = (
    segmentation.SEGMENTS_TABLE,
    engagement.SCORES_TABLE,
    experiment.ASSIGNMENT_TABLE,
    fraud.ALERTS_TABLE,
    risk.RISK_TABLE,
    propensity.PROPENSITY_TABLE,
    propensity.TARGETS_TABLE,
)
"""Every table the models write (each has a suite in :mod:`cardlake.quality.layers`)."""


def run(
    tables: Tables,
    settings: Settings,
    *,
    month: str | None = None,
    models: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Trains, registers and scores every model (or ``models``); returns their headline metrics.

    Args:
        tables: the lake.
        settings: loaded at the edge; reads ``MlSettings``.
        month: unused: the models train on every month of gold and score the latest (the
            stage keeps the shape every stage has).
        models: only these models, by name (see :data:`MODELS`).

    Raises:
        ConfigError: an unknown model name.
        JobFailed: too little data to split in time, or a critical expectation of a table
            the models wrote failed (``DataQualityError``, results recorded) (exit code 1).
            A model's failure stops the models not yet started; it is raised once those
            running have finished.
    """
    del month  # every model trains on the whole history of gold
    unknown = sorted(set(models or ()) - set(RUNNERS))
    if unknown:
        raise ConfigError(f"unknown model {unknown[0]!r} (known: {', '.join(MODELS)})")
    ml = settings.of(MlSettings)
    tracker = tracking.Tracker.configure(settings.config.paths.lake_root, ml.tracking)
    chosen = [n for n in START_ORDER if n in RUNNERS and (not models or n in models)]
    failed: set[str] = set()

    def train(name: str) -> dict[str, float]:
        if failed:  # as in a run one model after another, nothing starts after a failure
            raise JobFailed(f"ml {name} not run: {', '.join(sorted(failed))} failed")
        started = time.perf_counter()
        try:
            with model_jobs(tables.spark, name):
                result = RUNNERS[name](
                    tables.spark, settings.config, tables=tables, settings=ml, tracker=tracker
                )
        except BaseException:
            failed.add(name)
            raise
        result["wall_seconds"] = time.perf_counter() - started
        log.info("ml %s done in %.1fs", name, result["wall_seconds"])
        return result

    # The first failure comes back in START_ORDER; results are given in RUNNERS order.
    after = {name: [AFTER[name]] for name in chosen if AFTER.get(name) in chosen}
    done = in_parallel(train, chosen, threads=ml.models_at_once, after=after)
    trained = dict(zip(chosen, done, strict=True))
    results = {name: trained[name] for name in RUNNERS if name in trained}
    check_tables(tables, settings.config, TABLES)
    return results


@contextmanager
def model_jobs(spark: SparkSession | None, name: str) -> Iterator[None]:
    """The Spark jobs started inside (and in threads started inside) carry the model's name as
    the local property :data:`MODEL_PROPERTY`, so an event log's jobs can be summed per model
    (``bench/bench_ml.py``).

    Models trained side by side each set it in their own copy of the properties
    (:func:`cardlake.threads.in_parallel`). Without a session (the stage run around fake models
    in the tests) there is nothing to label.
    """
    if spark is None:
        yield
        return
    context = spark.sparkContext
    context.setLocalProperty(MODEL_PROPERTY, name)
    try:
        yield
    finally:
        context.setLocalProperty(MODEL_PROPERTY, None)  # type: ignore[arg-type]


def run_all(
    spark: SparkSession,
    cfg: Config,
    *,
    tables: Tables | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`run` for callers holding a session and a ``Config`` (notebooks, tests)."""
    from cardlake.ml.settings import load_ml_settings

    settings = Settings(config=cfg, sections={MlSettings: load_ml_settings(cfg.env)})
    return run(tables or Tables.from_config(spark, cfg), settings, models=only)


def _one(name: str) -> Callable[..., dict[str, float]]:
    def run_model(
        spark: SparkSession, cfg: Config, *, tables: Tables | None = None
    ) -> dict[str, float]:
        return run_all(spark, cfg, tables=tables, only=[name])[name]

    run_model.__name__ = f"run_{name}"
    run_model.__doc__ = f"Trains and scores the {name} model(s); returns headline metrics."
    return run_model


run_segmentation = _one("segmentation")
run_engagement = _one("engagement")
run_fraud = _one("fraud")
run_risk = _one("risk")
run_propensity = _one("propensity")
