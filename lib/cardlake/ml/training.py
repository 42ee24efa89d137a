"""The one training template of the supervised models: two tuned classifiers compared, logged,
the better registered, and the champion handed back to score with.

A model says what differs in a :class:`ModelTask` (its features, grids, the parts it is
measured on, how the better of the two is chosen and promoted) and hands
:func:`train_and_register` its rows; the template fits logistic regression and gradient-boosted
trees on the same rows, logs each one's chosen grid point, grid, drivers and curves, registers
the better with the promotion rule and returns what the model needs to write its table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cardlake.ml import metrics, plots, tracking
from cardlake.ml.common import (
    SCORE,
    Fitted,
    champion_for_scoring,
    drivers,
    fit_classifier,
    hash_share,
    month_of_index,
    with_score,
    with_time_split,
)
from cardlake.ml.settings import GbtGrid, LrGrid
from cardlake.threads import in_parallel

log = logging.getLogger("cardlake.ml")

KINDS = ("lr", "gbt")
VALIDATION = "validation_"
SIGNATURE_ROWS = 5  # rows of the training input that give the registered model its signature
WHAT_DRIVES = {"lr": "coefficients (standardised)", "gbt": "importances"}


class ClassifierSettings(Protocol):
    """What every supervised model's settings hold for the two classifiers."""

    @property
    def model_name(self) -> str: ...
    @property
    def lr_grid(self) -> LrGrid: ...
    @property
    def gbt_grid(self) -> GbtGrid: ...
    @property
    def gbt_step_size(self) -> float: ...


@dataclass(frozen=True)
class ModelTask:
    """What one supervised model says about itself; the template does the rest.

    ``parts`` names the held-out parts the models are measured on, each with the words its
    plots' titles use (``{"oot": "out of time"}``); every part's metrics are
    ``<kind>_<part>_<metric>`` (``part_metrics`` of its curve). The better kind is the one with
    the higher ``choose_on``: ``validation_<m>`` is the chosen grid point's validation figure
    (``auc`` or ``pr_auc``), anything else the kind's own ``<kind>_<choose_on>`` metric. It is
    promoted on ``<kind>_<promotion_metric>``.
    """

    name: str  # the experiment (``<prefix>-<name>``), the run (unless named) and the log line
    settings: ClassifierSettings  # the registry name, the grids and the trees' step size
    seed: int
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    parts: Mapping[str, str]
    choose_on: str
    promotion_metric: str
    drivers_title: str
    weighted: bool = False  # balanced class weights (a ``weight`` column in the rows)
    select_on: str = "auc"  # the grid point kept on validation
    part_metrics: Callable[[metrics.Curve], dict[str, float]] = metrics.summary
    calibration_part: str | None = None  # a calibration table and plot on this part
    curve_plots: bool = True  # ROC, precision-recall and gains per part
    keep_scored: tuple[str, ...] = ()  # parts whose scored rows stay cached for the caller
    run_name: str | None = None


@dataclass
class Candidate:
    """One kind fitted and scored on every part (what a model's own evaluations read)."""

    kind: str
    fitted: Fitted
    scored: dict[str, DataFrame]
    curves: dict[str, metrics.Curve]
    calibration: pd.DataFrame | None = None  # on the task's calibration part, if it has one


@dataclass
class Trained:
    """Both kinds, their metrics and curves, the one registered and the champion to score."""

    fitted: dict[str, Fitted]
    curves: dict[str, dict[str, metrics.Curve]]  # part -> kind -> curve
    metrics: dict[str, float]
    chosen: str
    promotion: tracking.Promotion
    champion: PipelineModel
    champion_version: str
    scored: dict[str, dict[str, DataFrame]] = field(default_factory=dict)  # kept parts

    def release(self) -> None:
        """Uncaches the scored rows kept for the caller."""
        for by_kind in self.scored.values():
            for scored_df in by_kind.values():
                scored_df.unpersist()


Evaluation = Callable[[Candidate], Mapping[str, float]]
RegistryTags = Callable[[str, Mapping[str, float]], Mapping[str, str]]


def train_and_register(
    tracker: tracking.Tracker,
    task: ModelTask,
    *,
    fit_df: DataFrame,
    valid_df: DataFrame,
    parts: Mapping[str, DataFrame],
    evaluate: Evaluation | None = None,
    compare_with: Mapping[str, Mapping[str, metrics.Curve]] | None = None,
    registry_tags: RegistryTags | None = None,
) -> Trained:
    """Fits both kinds on ``fit_df`` (grid point chosen on ``valid_df``), measures them on
    ``parts``, registers the better and returns it with the champion that scores.

    Call it inside the model's tracking run.

    Args:
        tracker: the registry the better kind is registered in.
        task: what the model says about itself.
        fit_df: the training rows (label, features and, when weighted, ``weight``).
        valid_df: the rows the grid point is chosen on.
        parts: the held-out rows per part of ``task.parts``.
        evaluate: the model's own evaluations of each kind, as metrics named in full.
        compare_with: other rankings' curves per part (a scorecard), drawn before the kinds'.
        registry_tags: the registered version's tags besides ``kind``, from the chosen kind
            and the metrics.

    Returns:
        The fitted kinds, curves, metrics (each kind's training seconds, part metrics and
        ``evaluate``'s), the chosen kind, the promotion and the champion with its version.
    """
    out: dict[str, float] = {}
    fitted: dict[str, Fitted] = {}
    curves: dict[str, dict[str, metrics.Curve]] = {
        part: dict((compare_with or {}).get(part, {})) for part in task.parts
    }
    calibration: dict[str, pd.DataFrame] = {}
    kept: dict[str, dict[str, DataFrame]] = {part: {} for part in task.keep_scored}

    def fit(kind: str) -> Candidate:
        return fit_candidate(task, kind, fit_df=fit_df, valid_df=valid_df, parts=parts)

    # Both kinds at once, as the grid points of one kind are: a fit is a chain of short Spark
    # jobs and driver work that leaves a core idle. MLflow's active run belongs to this
    # thread, so what the kinds log is logged here, in KINDS order, once both are fitted.
    for candidate in in_parallel(fit, KINDS):
        kind = candidate.kind
        log_choice(candidate.fitted)
        fitted[kind] = candidate.fitted
        out[f"{kind}_training_seconds"] = candidate.fitted.seconds
        for part, curve in candidate.curves.items():
            curves[part][kind] = curve
            out.update({f"{kind}_{part}_{k}": v for k, v in task.part_metrics(curve).items()})
        if candidate.calibration is not None:
            calibration[kind] = candidate.calibration
        if evaluate is not None:
            out.update(evaluate(candidate))
        for part, scored_df in candidate.scored.items():
            if part in kept:
                kept[part][kind] = scored_df
            else:
                scored_df.unpersist()
        log_drivers(task, candidate.fitted, fit_df)
    log_curve_plots(task, curves, calibration)
    chosen = max(fitted, key=lambda k: choice_value(task, fitted[k], out, k))
    tags = {"kind": chosen, **(registry_tags(chosen, out) if registry_tags else {})}
    promotion, champion, champion_version = register(
        tracker,
        task,
        fitted[chosen],
        fit_df=fit_df,
        value=out[f"{chosen}_{task.promotion_metric}"],
        tags=tags,
    )
    out["promoted"] = float(promotion.promoted)
    return Trained(
        fitted=fitted,
        curves=curves,
        metrics=out,
        chosen=chosen,
        promotion=promotion,
        champion=champion,
        champion_version=champion_version,
        scored=kept,
    )


def fit_candidate(
    task: ModelTask,
    kind: str,
    *,
    fit_df: DataFrame,
    valid_df: DataFrame,
    parts: Mapping[str, DataFrame],
) -> Candidate:
    """One kind fitted on its grid, scored (cached) and measured on every part; nothing logged
    (see :func:`log_choice`), so that kinds can be fitted in threads of their own."""
    grid = task.settings.lr_grid if kind == "lr" else task.settings.gbt_grid
    model = fit_classifier(
        kind,
        fit_df=fit_df,
        valid_df=valid_df,
        numeric=task.numeric,
        categorical=task.categorical,
        grid=grid,
        seed=task.seed,
        gbt_step=task.settings.gbt_step_size,
        weighted=task.weighted,
        select_on=task.select_on,
    )
    scored = {part: with_score(model.model, parts[part]).cache() for part in task.parts}
    curves = {part: metrics.score_curve(scored_df) for part, scored_df in scored.items()}
    calibration = (
        metrics.calibration_table(scored[task.calibration_part])
        if task.calibration_part is not None
        else None
    )
    return Candidate(kind=kind, fitted=model, scored=scored, curves=curves, calibration=calibration)


def log_choice(model: Fitted) -> None:
    """The kind's chosen grid point as parameters, and its whole grid as a table."""
    tracking.log_params({f"{model.kind}.best.{k}": v for k, v in model.params.items()})
    tracking.log_frame(pd.DataFrame(model.grid_results), f"{model.kind}_grid.csv")


def log_drivers(task: ModelTask, model: Fitted, fit_df: DataFrame) -> None:
    """What drives the kind's scores, as a table and a bar chart."""
    weights = drivers(model, fit_df)
    tracking.log_frame(weights.rename_axis("feature").reset_index(), f"{model.kind}_drivers.csv")
    plots.log_png(
        plots.importance_figure(weights, f"{task.drivers_title}: {WHAT_DRIVES[model.kind]}"),
        f"{model.kind}_drivers.png",
    )


def log_curve_plots(
    task: ModelTask,
    curves: Mapping[str, Mapping[str, metrics.Curve]],
    calibration: Mapping[str, pd.DataFrame],
) -> None:
    """Every part's ROC, precision-recall and gains (both kinds on one plot), and calibration."""
    if task.curve_plots:
        for part, words in task.parts.items():
            shown = curves[part]
            plots.log_png(plots.roc_figure(shown, f"ROC ({words})"), f"roc_{part}.png")
            plots.log_png(plots.pr_figure(shown, f"Precision-recall ({words})"), f"pr_{part}.png")
            plots.log_png(
                plots.gains_figure(shown, f"Cumulative gains ({words})"), f"gains_{part}.png"
            )
    if task.calibration_part is not None:
        part = task.calibration_part
        plots.log_png(
            plots.calibration_figure(calibration, f"Calibration ({task.parts[part]})"),
            f"calibration_{part}.png",
        )


def choice_value(task: ModelTask, model: Fitted, out: Mapping[str, float], kind: str) -> float:
    """The figure the better kind is chosen on (ties keep the first kind, ``lr``)."""
    if task.choose_on.startswith(VALIDATION):
        return model.validation[task.choose_on.removeprefix(VALIDATION)]
    return out[f"{kind}_{task.choose_on}"]


def register(
    tracker: tracking.Tracker,
    task: ModelTask,
    model: Fitted,
    *,
    fit_df: DataFrame,
    value: float,
    tags: Mapping[str, str],
) -> tuple[tracking.Promotion, PipelineModel, str]:
    """Logs the chosen kind with its signature, registers it (promotion rule on ``value``) and
    returns the promotion and the champion that scores, with its version."""
    import mlflow

    mlflow.set_tag("candidate", model.kind)
    sample = fit_df.select(*task.categorical, *task.numeric).limit(SIGNATURE_ROWS).toPandas()
    uri = tracking.log_spark_model(model.model, sample, pd.DataFrame({SCORE: [0.5] * len(sample)}))
    promotion = tracking.register_and_promote(
        tracker,
        name=task.settings.model_name,
        model_uri=uri,
        metric=task.promotion_metric,
        value=value,
        tags=tags,
    )
    champion, version = champion_for_scoring(promotion, model.model)
    return promotion, champion, version


@contextmanager
def model_run(
    tracker: tracking.Tracker, task: ModelTask, started: float
) -> Iterator[dict[str, float]]:
    """The model's tracking run; what the model puts in the yielded metrics is logged at the end
    with ``training_seconds`` (since ``started``)."""
    with tracker.run(task.name, task.run_name or task.name) as run:
        out: dict[str, float] = {}
        yield out
        out["training_seconds"] = time.perf_counter() - started
        tracking.log_metrics(out)
        log.info("%s run %s: %s", task.name, run.info.run_id, out)


# -- the customer-month splits of engagement, risk and propensity ----------------------------


@dataclass(frozen=True)
class MonthSplit:
    """Months as indices: training up to ``cutoff_index``, the out-of-time month and the month
    scored (see :func:`with_time_split`)."""

    cutoff_index: int
    oot_index: int
    score_index: int

    @property
    def score_month(self) -> str:
        return month_of_index(self.score_index)

    def log(self) -> None:
        tracking.log_params(
            {
                "split.cutoff_month": month_of_index(self.cutoff_index),
                "split.oot_month": month_of_index(self.oot_index),
                "split.score_month": self.score_month,
            }
        )

    def apply(self, df: DataFrame, *, train_share: float, seed: int) -> DataFrame:
        return with_time_split(
            df,
            cutoff_index=self.cutoff_index,
            oot_index=self.oot_index,
            score_index=self.score_index,
            train_share=train_share,
            seed=seed,
        )


def split_part(split_df: DataFrame, name: str) -> DataFrame:
    return split_df.where(F.col("split") == name)


def fit_and_valid(
    split_df: DataFrame, *, seed: int, fit_share: float
) -> tuple[DataFrame, DataFrame]:
    """The training rows cut by customer (seeded) into the rows fitted and those validated."""
    train = split_part(split_df, "train")
    in_fit = hash_share(F.col("customer_key"), seed) < fit_share
    return train.where(in_fit), train.where(~in_fit)


def last_month_index(df: DataFrame) -> int:
    row = df.agg(F.max("month_idx")).first()
    assert row is not None  # an aggregate without grouping has one row
    return int(row[0])
