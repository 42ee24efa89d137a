"""What every supervised model here shares: months as integers, feature preparation, seeded
splits, the two classifiers with a small grid chosen on a validation set, scores and drivers."""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.feature import (
    OneHotEncoder,
    SQLTransformer,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, NumericType

from cardlake.ml import metrics, tracking
from cardlake.ml.settings import GbtGrid, LrGrid
from cardlake.months import index_of_month as index_of_month
from cardlake.months import month_index as month_index
from cardlake.months import month_of_index as month_of_index
from cardlake.threads import in_parallel

log = logging.getLogger("cardlake.ml")

SCORE = "score"
FEATURES_TABLE = "gold.customer_monthly_features"  # the models' monthly input
LABEL = "label"
WEIGHT = "weight"


# -- months -------------------------------------------------------------------------------


# Month arithmetic lives in cardlake.months (one copy); re-exported for the model modules.


# -- splits -------------------------------------------------------------------------------


def hash_share(key: Column, seed: int) -> Column:
    """A stable pseudo-random number in [0, 1) per key: the same customer lands in the same
    split on every run and every machine, whatever the partitioning."""
    return (F.abs(F.xxhash64(key, F.lit(seed))) % 1_000_000) / 1_000_000.0


def with_time_split(
    df: DataFrame,
    *,
    cutoff_index: int,
    oot_index: int,
    score_index: int,
    train_share: float,
    seed: int,
    key_col: str = "customer_key",
) -> DataFrame:
    """Adds ``split``: ``train``/``oos`` (months up to the cutoff, by customer, seeded),
    ``oot`` (the out-of-time month), ``score`` (the scoring month), else ``unused``."""
    m = F.col("month_idx")
    in_train = hash_share(F.col(key_col), seed) < train_share
    return df.withColumn(
        "split",
        F.when(m == score_index, "score")
        .when(m == oot_index, "oot")
        .when((m <= cutoff_index) & in_train, "train")
        .when(m <= cutoff_index, "oos")
        .otherwise("unused"),
    )


# -- features -----------------------------------------------------------------------------

NUM_SUFFIX = "__num"


def with_numeric_features(df: DataFrame, columns: Sequence[str], *, fill: float = 0.0) -> DataFrame:
    """Casts booleans and numbers to double and fills nulls and NaNs (a ratio of two zeros, a
    deviation of one value), so assemblers and models never see either."""
    out = df
    for name in columns:
        kind = df.schema[name].dataType
        if not isinstance(kind, NumericType | BooleanType):
            raise TypeError(f"feature {name} is {kind.simpleString()}, not numeric or boolean")
        as_double = F.col(name).cast("double")
        out = out.withColumn(name, F.coalesce(F.nanvl(as_double, F.lit(fill)), F.lit(fill)))
    return out


def feature_stages(numeric: Sequence[str], categorical: Sequence[str], *, scale: bool) -> list:
    """Index and one-hot the categoricals, assemble, optionally standardise into ``features``."""
    # Missing numbers (null, or NaN from a ratio of zeros) become 0 inside the model, so
    # fitting and scoring treat them alike and no NaN reaches a model.
    filled = [f"{name}{NUM_SUFFIX}" for name in numeric]
    stages: list[Any] = []
    if numeric:
        stages.append(
            SQLTransformer(
                statement="SELECT *, "
                + ", ".join(
                    f"coalesce(nanvl(cast(`{n}` AS double), 0D), 0D) AS `{f}`"
                    for n, f in zip(numeric, filled, strict=True)
                )
                + " FROM __THIS__"
            )
        )
    encoded = []
    for name in categorical:
        stages.append(
            StringIndexer(
                inputCol=name,
                outputCol=f"{name}_idx",
                handleInvalid="keep",
                stringOrderType="alphabetAsc",
            )
        )
        stages.append(OneHotEncoder(inputCol=f"{name}_idx", outputCol=f"{name}_ohe"))
        encoded.append(f"{name}_ohe")
    target = "raw_features" if scale else "features"
    stages.append(
        VectorAssembler(inputCols=[*filled, *encoded], outputCol=target, handleInvalid="keep")
    )
    if scale:
        stages.append(
            StandardScaler(inputCol=target, outputCol="features", withMean=True, withStd=True)
        )
    return stages


def feature_names(model: PipelineModel, sample: DataFrame) -> list[str]:
    """Names of the assembled vector's slots, from the assembler's ML attribute metadata (the
    scaler's output does not carry the names)."""
    schema = model.transform(sample.limit(1)).schema
    column = "raw_features" if "raw_features" in schema.names else "features"
    meta = schema[column].metadata.get("ml_attr", {})
    slots: dict[int, str] = {}
    for group in meta.get("attrs", {}).values():
        for attr in group:
            slots[attr["idx"]] = attr["name"].removesuffix(NUM_SUFFIX)
    size = int(meta.get("num_attrs", len(slots)))
    return [slots.get(i, f"f{i}") for i in range(size)]


def with_class_weight(df: DataFrame, label_col: str = LABEL) -> DataFrame:
    """Balanced class weights: each class carries half the total weight."""
    counts = {int(r[0]): int(r[1]) for r in df.groupBy(label_col).count().collect()}
    total = sum(counts.values())
    pos = max(counts.get(1, 0), 1)
    neg = max(counts.get(0, 0), 1)
    return df.withColumn(
        WEIGHT,
        F.when(F.col(label_col) == 1, F.lit(total / (2.0 * pos))).otherwise(total / (2.0 * neg)),
    )


# -- models -------------------------------------------------------------------------------


@dataclass
class Fitted:
    """A fitted classifier pipeline with what was learnt while choosing it."""

    kind: str
    model: PipelineModel
    params: dict[str, Any]
    validation: dict[str, float]
    grid_results: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    validation_curve: metrics.Curve | None = None
    """The chosen point's scores on the validation rows (a threshold is set on them)."""


def _lr(params: dict[str, Any], weighted: bool) -> LogisticRegression:
    weight: dict[str, Any] = {"weightCol": WEIGHT} if weighted else {}
    return LogisticRegression(
        featuresCol="features",
        labelCol=LABEL,
        maxIter=params["max_iter"],
        regParam=params["reg_param"],
        elasticNetParam=params["elastic_net"],
        standardization=False,
        **weight,
    )


def _gbt(params: dict[str, Any], weighted: bool, seed: int, step: float) -> GBTClassifier:
    weight: dict[str, Any] = {"weightCol": WEIGHT} if weighted else {}
    return GBTClassifier(
        featuresCol="features",
        labelCol=LABEL,
        maxDepth=params["max_depth"],
        maxIter=params["max_iter"],
        stepSize=step,
        seed=seed,
        subsamplingRate=0.8,
        **weight,
    )


def grid_points(grid: LrGrid | GbtGrid) -> list[dict[str, Any]]:
    names = [f for f in grid.__dataclass_fields__]
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(getattr(grid, n) for n in names))
    ]


def fit_classifier(
    kind: str,
    *,
    fit_df: DataFrame,
    valid_df: DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    grid: LrGrid | GbtGrid,
    seed: int,
    gbt_step: float = 0.1,
    weighted: bool = False,
    select_on: str = "auc",
) -> Fitted:
    """Fits ``kind`` ("lr" or "gbt") for each grid point; keeps the best on ``valid_df``.

    Train-validation split rather than cross-validation: the data are time-ordered and the
    budget is a few minutes on two cores, so each grid point is fitted once. The feature
    stages are fitted once and their output cached; the grid points are fitted two at a time
    (as Spark's ``CrossValidator(parallelism=2)``): one small fit is a chain of short Spark jobs
    that leave a core idle between them. Ties keep the first point in grid order.
    """
    started = time.perf_counter()
    features = Pipeline(stages=feature_stages(numeric, categorical, scale=kind == "lr")).fit(fit_df)
    prepared = features.transform(fit_df).cache()

    def fit_point(
        params: dict[str, Any],
    ) -> tuple[dict[str, Any], PipelineModel, dict[str, float], metrics.Curve]:
        estimator = (
            _lr(params, weighted) if kind == "lr" else _gbt(params, weighted, seed, gbt_step)
        )
        model = PipelineModel(stages=[*features.stages, estimator.fit(prepared)])
        curve = metrics.score_curve(with_score(model, valid_df))
        return (
            params,
            model,
            {"auc": metrics.auc(curve), "pr_auc": metrics.average_precision(curve)},
            curve,
        )

    try:
        outcomes = in_parallel(fit_point, grid_points(grid))
    finally:
        prepared.unpersist()
    best: tuple[float, int] | None = None
    results = []
    for i, (params, _, summary, _) in enumerate(outcomes):
        results.append({**params, **summary})
        value = summary[select_on]
        value = -math.inf if math.isnan(value) else value
        if best is None or value > best[0]:
            best = (value, i)
    assert best is not None
    params, model, summary, curve = outcomes[best[1]]
    fitted = Fitted(
        kind=kind,
        model=model,
        params=params,
        validation=summary,
        grid_results=results,
        seconds=time.perf_counter() - started,
        validation_curve=curve,
    )
    log.info(
        "%s: best %s validation %s in %.1fs", kind, fitted.params, fitted.validation, fitted.seconds
    )
    return fitted


def with_score(model: PipelineModel, df: DataFrame) -> DataFrame:
    """Adds ``score`` (probability of class 1) and drops the model's working columns."""
    scored = model.transform(df).withColumn(SCORE, metrics.probability_of_class_one())
    working = {"features", "raw_features", "rawPrediction", "probability", "prediction"}
    working |= {c for c in scored.columns if c.endswith(("_idx", "_ohe"))}
    return scored.select(*[c for c in scored.columns if c not in working])


def drivers(fitted: Fitted, sample: DataFrame) -> pd.Series:
    """Coefficients (standardised features) of a logistic regression, importances of trees."""
    names = feature_names(fitted.model, sample)
    last: Any = fitted.model.stages[-1]  # the fitted classifier
    values = (
        last.coefficients.toArray() if fitted.kind == "lr" else (last.featureImportances.toArray())
    )
    names = names + [f"f{i}" for i in range(len(names), len(values))]
    return pd.Series(values, index=names[: len(values)], name="weight").sort_values(
        key=lambda s: -s.abs()
    )


def champion_for_scoring(
    promotion: tracking.Promotion, fitted: PipelineModel
) -> tuple[PipelineModel, str]:
    """The champion that scores, and its version, after ``promotion`` registered ``fitted``.

    Promoted, the champion is the pipeline in hand (the registry holds it as saved from that
    object), so it is not read back: loading a Spark pipeline costs a Spark job per stage.
    Otherwise the registry's champion is loaded.
    """
    if promotion.promoted:
        return fitted, promotion.version
    return tracking.load_champion(promotion.name)
