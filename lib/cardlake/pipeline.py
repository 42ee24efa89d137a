"""The stages in order, and one run of them: landing → bronze → silver → gold → models.

Every stage has one shape, ``run(tables, settings, *, month)``. A run builds the SparkSession
and the :class:`~cardlake.tables.Tables` once (only when a stage needs them: ``generate`` is
plain Python) and hands both to each stage in turn, recording each stage's lineage in
``_ops.lineage`` (:func:`cardlake.governance.lineage.track`). Adding a stage is one module and
one line in :data:`STAGES`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from cardlake.analytics.job import run as run_analytics
from cardlake.bronze.contracts import INGEST_ORDER, BronzeConfig
from cardlake.bronze.stage import run as run_bronze
from cardlake.config import Config, ConfigError, Settings, load_settings
from cardlake.console import library_output_to_log
from cardlake.errors import ConnectorMissing
from cardlake.gold.config import GoldConfig
from cardlake.gold.job import run as run_gold
from cardlake.ml.job import run as run_ml
from cardlake.ml.settings import MlSettings
from cardlake.quality.expectations import one_context_per_run
from cardlake.silver.job import BRONZE_INPUTS
from cardlake.silver.job import run as run_silver
from cardlake.synth import generate
from cardlake.synth.params import SynthParams
from cardlake.tables import TableError, Tables
from cardlake.tracking import TrackingSettings

log = logging.getLogger("cardlake.pipeline")

# Every settings file the stages read, loaded once at the edge (cardlake.config.load_all).
SECTIONS: dict[type, str] = {
    BronzeConfig: "bronze",
    GoldConfig: "gold",
    MlSettings: "ml",
    SynthParams: "base.synth",
    TrackingSettings: "ml.tracking",  # silver logs entity resolution to MLflow too
}


def run_generate(tables: Tables | None, settings: Settings, *, month: str | None) -> Any:
    """Writes the synthetic landing zone and its truth (plain Python: no session needed).

    A full run leaves a landing zone that already has data alone (``make clean-lake`` redoes
    it); a month's run writes that month's drop.
    """
    del tables
    cfg, params = settings.config, settings.of(SynthParams)
    if month is not None and month not in params.months():
        history = params.months()
        raise ConfigError(
            f"--month {month} is outside the generated history {history[0]}..{history[-1]}"
        )
    landing = Path(cfg.paths.landing_root)
    if month is None and landing.is_dir() and any(landing.iterdir()):
        log.info("landing zone %s already has data; not regenerating", landing)
        return None
    return generate(
        landing_root=cfg.paths.landing_root,
        truth_root=cfg.paths.truth_root,
        params=params,
        months=[month] if month else None,
    )


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes:
        reads: what its lineage names as inputs (see :func:`cardlake.governance.lineage.track`:
            ``layer.table``, ``layer.*``, or ``landing.<source>`` for files); what it writes is
            found by the tables whose version changed. A table a stage reads and also writes
            (its own state, such as silver's crosswalk) is an output only.
    """

    name: str
    run: Callable[..., Any]
    description: str
    needs_lake: bool = True
    reads: tuple[str, ...] = ()


# Bronze reads files: each landing source is a dataset of its own, without a Delta version.
_LANDING = tuple(f"landing.{source}" for source in INGEST_ORDER)
# The models' training and scoring data (silver.crosswalk and the truth they are evaluated
# against feed metrics in MLflow, not tables); gold.customer_segments, read by propensity, is
# the stage's own output.
_ML_READS = (
    "gold.customer_monthly_features",
    "gold.fact_transactions",
    "gold.fact_product_usage",
    "silver.transactions",
)
# The models' outputs and what the analysts' tables join them with.
_ANALYTICS_READS = (
    "gold.customer_monthly_features",
    "gold.fact_transactions",
    "gold.customer_segments",
    "gold.fraud_alerts",
    "gold.customer_risk",
    "gold.engagement_scores",
    "silver.interactions",
    "silver.debts",
    "silver.customers",
)

STAGES: tuple[Stage, ...] = (
    Stage("generate", run_generate, "synthetic landing zone and ground truth", needs_lake=False),
    Stage(
        "bronze",
        run_bronze,
        "landing files into bronze, bad records into quarantine",
        reads=_LANDING,
    ),
    # Silver reads the bronze sources it cleans; its crosswalk and matcher are its own state.
    Stage(
        "silver",
        run_silver,
        "cleaned tables, resolved customers, stable keys",
        reads=tuple(f"bronze.{name}" for name in BRONZE_INPUTS),
    ),
    # Gold reads eight silver tables; the layer is named rather than a list that would drift
    # from the code, at the cost of also naming silver's entity-resolution tables.
    Stage("gold", run_gold, "star schema, monthly customer features, KPIs", reads=("silver.*",)),
    Stage(
        "ml",
        run_ml,
        "segments, disengagement and its experiment, fraud alerts, risk queue",
        reads=_ML_READS,
    ),
    Stage(
        "analytics",
        run_analytics,
        "analysts' tables after the models: RFM, service, debt, 360",
        reads=_ANALYTICS_READS,
    ),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def select(only: Sequence[str] | None) -> list[Stage]:
    """The stages to run, in pipeline order.

    Raises:
        ConfigError: a name that is no stage (a usage error, exit code 2).
    """
    if not only:
        return list(STAGES)
    unknown = [name for name in only if name not in STAGE_NAMES]
    if unknown:
        raise ConfigError(
            f"--only: no stage named {unknown[0]!r} (stages: {', '.join(STAGE_NAMES)})"
        )
    return [s for s in STAGES if s.name in only]


@dataclass
class Lake:
    """The session and the table layer of one run, built on first use and only once."""

    settings: Settings
    spark: SparkSession | None = None
    _tables: Tables | None = field(default=None, repr=False)

    def session(self) -> SparkSession:
        if self.spark is None:
            from cardlake.console import jvm_output_to_log
            from cardlake.spark import build_session

            with jvm_output_to_log():
                self.spark = build_session(self.settings.config)
        return self.spark

    def tables(self) -> Tables:
        if self._tables is None:
            try:
                self._tables = Tables.from_config(self.session(), self.settings.config)
            except TableError as exc:
                if "classpath" in str(exc):  # the configured connector's jars did not load
                    raise ConnectorMissing(str(exc)) from exc
                raise
        return self._tables

    def spark_context(self) -> Any:
        return self.spark.sparkContext if self.spark is not None else None


@dataclass
class StageOutcome:
    name: str
    seconds: float
    result: Any


def run_stages(
    lake: Lake,
    stages: Sequence[Stage],
    *,
    month: str | None,
    options: dict[str, dict[str, Any]] | None = None,
    on_stage: Callable[[Stage], Any] | None = None,
) -> list[StageOutcome]:
    """Runs ``stages`` in order on one lake.

    Args:
        lake: the session and tables, built on the first stage that needs them.
        stages: from :func:`select`.
        month: process only this month (incremental run); None for everything.
        options: extra keyword arguments per stage name (``{"silver": {"full_resolve": True}}``).
        on_stage: a context-manager factory wrapped around each stage (the console's line).

    Each stage that needs the lake is wrapped in :func:`cardlake.governance.lineage.track`:
    two events in ``_ops.lineage``, START and COMPLETE (or FAIL), naming the tables it declares
    it reads (:attr:`Stage.reads`) and those whose Delta version changed while it ran.
    """
    outcomes = []
    # One Great Expectations context for all the stages' checks; Data Docs rendered once, after
    # the last stage.
    with one_context_per_run(around_docs=library_output_to_log):
        for stage in stages:
            started = time.perf_counter()
            log.info("stage %s: %s", stage.name, stage.description)
            kwargs = (options or {}).get(stage.name, {})
            # The stage's line first (it keeps the real console), then what libraries print.
            with on_stage(stage) if on_stage else nullcontext(), library_output_to_log():
                tables = lake.tables() if stage.needs_lake else None
                # START, then COMPLETE or FAIL (the stage's exception propagating unchanged)
                with _lineage(tables, stage):
                    result = stage.run(tables, lake.settings, month=month, **kwargs)
            seconds = time.perf_counter() - started
            log.info("stage %s done in %.1fs", stage.name, seconds)
            outcomes.append(StageOutcome(stage.name, seconds, result))
    return outcomes


def _lineage(tables: Tables | None, stage: Stage) -> AbstractContextManager[Any]:
    if tables is None:  # no lake, no lineage table to write to
        return nullcontext()
    from cardlake.governance import lineage  # the OpenLineage client: ~0.4 s to import

    return lineage.track(tables, stage.name, inputs=stage.reads)


def settings_for(cfg: Config) -> Settings:
    """The stages' settings for an already loaded ``cfg`` (notebooks, tests).

    The harness loads everything with :func:`cardlake.config.load_all` instead; here the
    generator's parameters come from ``cfg.synth`` as given (overrides included).
    """
    sections: dict[type, Any] = {}
    for cls, name in SECTIONS.items():
        if cls is not SynthParams:
            file, _, section = name.partition(".")
            sections[cls] = load_settings(cls, file, env=cfg.env, section=section or None)
    try:
        sections[SynthParams] = SynthParams(**dict(cfg.synth))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"synth: {exc}") from exc
    return Settings(config=cfg, sections=sections)


def run_pipeline(
    spark: SparkSession,
    cfg: Config,
    *,
    month: str | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, float]:
    """Runs the stages on an existing session; returns each stage's wall time in seconds.

    For notebooks and tests that hold a session; ``cardlake run`` adds the lock, the console
    and the exit codes.
    """
    lake = Lake(settings_for(cfg), spark=spark)
    return {o.name: o.seconds for o in run_stages(lake, select(only), month=month)}
