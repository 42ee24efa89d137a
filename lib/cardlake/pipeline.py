"""The whole pipeline in one SparkSession: landing → bronze → silver → gold → models.

``make run`` calls :func:`run_pipeline` through ``jobs/run_pipeline.py``. Each stage is also a
job of its own (``jobs/<stage>.py``) for schedulers; here they share one session, because Spark
start-up costs seconds per job. A stage is listed only once it exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardlake.config import Config

log = logging.getLogger("cardlake.pipeline")

StageFn = Callable[[Any, Config, "str | None"], Any]


@dataclass(frozen=True)
class Stage:
    name: str
    run: StageFn
    description: str


def _generate(spark: Any, cfg: Config, month: str | None) -> Any:
    from cardlake.config import load_settings
    from cardlake.synth import generate
    from cardlake.synth.params import SynthParams

    landing = Path(cfg.paths.landing_root)
    if month is None and landing.is_dir() and any(landing.iterdir()):
        log.info(
            "landing zone %s already has data; not regenerating (make clean-lake to redo)", landing
        )
        return None
    return generate(
        landing_root=cfg.paths.landing_root,
        truth_root=cfg.paths.truth_root,
        params=load_settings(SynthParams, "base", env=cfg.env, section="synth"),
        months=[month] if month else None,
    )


def _bronze(spark: Any, cfg: Config, month: str | None) -> Any:
    from cardlake.bronze import load_bronze_config, run_bronze
    from cardlake.tables import Tables

    settings = load_bronze_config(cfg.env)
    return run_bronze(
        spark,
        Tables.from_config(spark, cfg),
        settings,
        landing_root=cfg.paths.landing_root,
        token_key=settings.token_key(cfg.env),
        months=[month] if month else None,
        data_docs_dir=cfg.lake_path("_ops", "data_docs") if settings.data_docs else None,
    )


def _silver(spark: Any, cfg: Config, month: str | None) -> Any:
    from cardlake.silver.job import run

    return run(spark, cfg, month=month)


def _gold(spark: Any, cfg: Config, month: str | None) -> Any:
    from cardlake.gold.job import run

    return run(spark, cfg, month=month)


def _ml(spark: Any, cfg: Config, month: str | None) -> Any:
    from cardlake.ml.job import run_all

    results = run_all(spark, cfg)
    for model, metrics in results.items():
        log.info("model %s: %s", model,
                 ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())))
    return results


STAGES: tuple[Stage, ...] = (
    Stage("generate", _generate, "synthetic landing zone and ground truth"),
    Stage("bronze", _bronze, "landing files into bronze, bad records into quarantine"),
    Stage("silver", _silver, "cleaned tables, resolved customers, stable keys"),
    Stage("gold", _gold, "star schema, monthly customer features, KPIs"),
    Stage("ml", _ml, "segments, disengagement and its experiment, fraud alerts, risk queue"),
)


def run_pipeline(
    spark: Any, cfg: Config, *, month: str | None = None, only: Sequence[str] | None = None
) -> dict[str, float]:
    """Runs the stages in order; returns each stage's wall time in seconds.

    Args:
        spark: the session every stage shares.
        cfg: configuration of the environment.
        month: process only this month (incremental run); None for everything.
        only: run just these stages (by name).
    """
    timings: dict[str, float] = {}
    for stage in STAGES:
        if only and stage.name not in only:
            continue
        started = time.perf_counter()
        log.info("stage %s: %s", stage.name, stage.description)
        stage.run(spark, cfg, month)
        timings[stage.name] = time.perf_counter() - started
        log.info("stage %s done in %.1fs", stage.name, timings[stage.name])
    return timings
