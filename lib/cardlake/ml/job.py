"""The ML stage: one function per model and ``run_all`` for the pipeline.

Each ``run_<model>(spark, cfg, *, tables=None)`` loads ``conf/ml.yaml`` for ``cfg.env``, points
MLflow at the configured store, trains, registers, scores with the champion and returns its
headline metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from cardlake.config import Config
from cardlake.ml import tracking
from cardlake.ml.settings import MlSettings, load_ml_settings

log = logging.getLogger("cardlake.ml")

MODELS = ("segmentation", "engagement", "fraud", "risk")


def _context(spark: Any, cfg: Config, tables: Any) -> tuple[Any, MlSettings, tracking.Tracker]:
    from cardlake.tables import Tables

    settings = load_ml_settings(cfg.env)
    tracker = tracking.Tracker.configure(cfg.paths.lake_root, settings.tracking)
    return tables or Tables.from_config(spark, cfg), settings, tracker


def _runner(module: str, function: str) -> Callable[..., dict[str, float]]:
    def run(spark: Any, cfg: Config, *, tables: Any = None) -> dict[str, float]:
        import importlib

        tables, settings, tracker = _context(spark, cfg, tables)
        fn = getattr(importlib.import_module(f"cardlake.ml.{module}"), function)
        return fn(spark, cfg, tables=tables, settings=settings, tracker=tracker)

    run.__name__ = function
    run.__doc__ = f"Trains and scores the {module} model(s); returns headline metrics."
    return run


run_segmentation = _runner("segmentation", "run_segmentation")
run_engagement = _runner("engagement", "run_engagement")
run_fraud = _runner("fraud", "run_fraud")
run_risk = _runner("risk", "run_risk")

RUNNERS: dict[str, Callable[..., dict[str, float]]] = {
    "segmentation": run_segmentation,
    "engagement": run_engagement,
    "fraud": run_fraud,
    "risk": run_risk,
}


def run_all(spark: Any, cfg: Config, *, tables: Any = None,
            only: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Runs every model (or ``only`` those) in order; returns each one's headline metrics,
    with its wall time as ``wall_seconds``."""
    tables, _, _ = _context(spark, cfg, tables)
    results: dict[str, dict[str, float]] = {}
    for name in MODELS:
        if only and name not in only:
            continue
        started = time.perf_counter()
        results[name] = RUNNERS[name](spark, cfg, tables=tables)
        results[name]["wall_seconds"] = time.perf_counter() - started
        log.info("ml %s done in %.1fs", name, results[name]["wall_seconds"])
    return results
