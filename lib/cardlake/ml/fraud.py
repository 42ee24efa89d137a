"""Transaction-level fraud: features from the transaction and its card's recent history, a
time-ordered split with a feedback delay, class-weighted logistic regression and gradient-boosted
trees, a threshold from a precision target or a cost, and ``gold.fraud_alerts`` with reasons.

Labels are chargebacks (``fraud_reported_at``), which arrive days to weeks late. Training at the
start of the test period may use only the labels reported by then, so training transactions end
``feedback_delay_days`` before it (later ones would look legitimate only because their reports
have not arrived yet). Every history feature looks strictly backwards in time, and the merchant
feature counts only reports filed before the transaction's day.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.errors import JobFailed
from cardlake.ml import metrics, tracking, training
from cardlake.ml.common import (
    LABEL,
    SCORE,
    hash_share,
    with_class_weight,
    with_score,
)
from cardlake.ml.fraud_features import (
    BASE_FEATURES,
    CATEGORICAL,
    DAY,
    FAILED_STATES,
    REASONS,
    feature_columns,
    learn_small_amount,
    merchant_reports,
    reasons_column,
    window_hours,
    with_transaction_features,
)
from cardlake.ml.settings import FraudSettings, MlSettings

if TYPE_CHECKING:
    from cardlake.config import Config
    from cardlake.tables import Tables

log = logging.getLogger("cardlake.ml")

TRANSACTIONS_TABLE = "silver.transactions"
ALERTS_TABLE = "gold.fraud_alerts"
# Registry tag: the small-payment cut-off (USD) the version's features were computed with.
SMALL_AMOUNT_TAG = "small_amount_usd"


def choose_threshold(
    curve: metrics.Curve,
    *,
    rule: Literal["precision", "cost"],
    precision_target: float,
    cost_fn: float,
    cost_fp: float,
) -> float:
    """The alert threshold on validation scores.

    ``precision``: the lowest score whose alerts reach the precision target (the most recall at
    that precision); the highest score when none does. ``cost``: the score minimising
    ``cost_fn * missed + cost_fp * false alerts``.
    """
    tp = np.cumsum(curve.pos)
    fp = np.cumsum(curve.neg)
    if rule == "precision":
        precision = tp / np.maximum(tp + fp, 1)
        ok = np.flatnonzero(precision >= precision_target)
        return float(curve.scores[ok[-1]] if len(ok) else curve.scores[0])
    cost = cost_fn * (curve.n_pos - tp) + cost_fp * fp
    return float(curve.scores[int(np.argmin(cost))])


def split_bounds(months: Sequence[str], s: FraudSettings) -> dict[str, datetime]:
    """Test start, training end (test start minus the feedback delay) and validation start."""
    ordered = sorted(months)
    if len(ordered) < s.test_months + s.validation_months + 2:
        raise JobFailed(f"too few months of transactions for the fraud split: {ordered}")
    test_start = datetime.strptime(ordered[-s.test_months], "%Y-%m")
    train_end = test_start - timedelta(days=s.feedback_delay_days)
    valid_start = train_end - timedelta(days=30 * s.validation_months)
    return {"test_start": test_start, "train_end": train_end, "valid_start": valid_start}


def with_split(tx: DataFrame, bounds: dict[str, datetime]) -> DataFrame:
    """``split`` (fit, valid, delay, test) by time, and the label known at the split's end.

    Training and validation labels are the reports filed before the test period starts; the
    test months' labels are every report, however late.
    """
    known = F.col("fraud_reported_at").isNotNull() & (
        F.col("fraud_reported_at") < F.lit(bounds["test_start"])
    )
    ts = F.col("ts")
    return tx.withColumn(
        "split",
        F.when(ts >= F.lit(bounds["test_start"]), "test")
        .when(ts >= F.lit(bounds["train_end"]), "delay")
        .when(ts >= F.lit(bounds["valid_start"]), "valid")
        .otherwise("fit"),
    ).withColumn(
        LABEL,
        F.when(
            F.col("split") == "test", F.col("fraud_reported_at").isNotNull().cast("int")
        ).otherwise(known.cast("int")),
    )


def features(
    tx: DataFrame, bounds: dict[str, datetime], *, settings: FraudSettings, small_amount_usd: float
) -> DataFrame:
    """The model's rows: features, split and label of every transaction."""
    numeric = feature_columns(settings)
    feats = with_split(
        with_transaction_features(
            tx, hours=window_hours(settings), small_amount_usd=small_amount_usd
        ),
        bounds,
    )
    keep = [
        "transaction_id",
        "customer_key",
        "instrument_id",
        "ts",
        "txn_date",
        "amount_usd",
        "month",
        "split",
        LABEL,
        *CATEGORICAL,
        *numeric,
        "is_night",
        "is_cross_border",
        "tx_count_1h",
        "small_count_1h",
    ]
    return feats.select(*dict.fromkeys(keep))


def fraud_task(s: FraudSettings, *, seed: int) -> training.ModelTask:
    """Class-weighted classifiers chosen on validation average precision (fraud is rare),
    measured on the test months and promoted on their AUC."""
    return training.ModelTask(
        name="fraud",
        settings=s,
        seed=seed,
        numeric=tuple(feature_columns(s)),
        categorical=tuple(CATEGORICAL),
        parts={"test": "test months"},
        choose_on="validation_pr_auc",
        promotion_metric="test_auc",
        drivers_title="Fraud drivers",
        weighted=True,
        select_on="pr_auc",
        part_metrics=ranking_metrics,
        calibration_part="test",
    )


def ranking_metrics(curve: metrics.Curve) -> dict[str, float]:
    """AUC and average precision: ``<kind>_test_auc`` and ``<kind>_test_ap``."""
    return {"auc": metrics.auc(curve), "ap": metrics.average_precision(curve)}


def run_fraud(
    spark: SparkSession,
    cfg: Config,
    *,
    tables: Tables,
    settings: MlSettings,
    tracker: tracking.Tracker,
) -> dict[str, float]:
    """Trains both fraud models on the time split, compares them on the test months, registers
    the better (promotion on test AUC) and writes the champion's alerts for the test months.

    Returns:
        Headline metrics: test AUC, average precision and card-precision@k of both models, the
        threshold and, where the truth is on disk, both against the best achievable.
    """
    s = settings.fraud
    seed = settings.seed
    task = fraud_task(s, seed=seed)
    started = time.perf_counter()
    version = tables.version(TRANSACTIONS_TABLE)
    tx = tables.read(TRANSACTIONS_TABLE, version=version)
    months = [r[0] for r in tx.select("month").distinct().collect()]
    b = split_bounds(months, s)
    small_usd = small_amount(tx, b, s)
    feats = features(tx, b, settings=s, small_amount_usd=small_usd).cache()
    sampled = (F.col(LABEL) == 1) | (hash_share(F.col("transaction_id"), seed) < s.negative_sample)
    fit_df = with_class_weight(feats.where((F.col("split") == "fit") & sampled)).cache()
    with training.model_run(tracker, task, started) as out:
        tracking.log_params({"seed": seed, **{f"fraud.{k}": v for k, v in vars(s).items()}})
        tracking.log_metrics({"small_amount_usd": small_usd})
        tracking.log_params({f"split.{k}": v.isoformat() for k, v in b.items()})
        tracking.log_data_versions({TRANSACTIONS_TABLE: version})
        log_split_counts(feats)
        trained = training.train_and_register(
            tracker,
            task,
            fit_df=fit_df,
            valid_df=feats.where(F.col("split") == "valid"),
            parts={"test": feats.where(F.col("split") == "test")},
            evaluate=lambda candidate: evaluate_on_test(spark, cfg, candidate, s),
            registry_tags=lambda chosen, found: {
                "threshold": repr(found[f"{chosen}_threshold"]),
                SMALL_AMOUNT_TAG: repr(small_usd),
            },
        )
        out.update(trained.metrics)
        test_months = sorted(m for m in months if m >= b["test_start"].strftime("%Y-%m"))
        out["alerts_written"] = write_alerts(
            tables,
            tracker,
            trained,
            feats.where(F.col("split") == "test"),
            s,
            features_with=lambda small: features(tx, b, settings=s, small_amount_usd=small),
            small_usd=small_usd,
            test_months=test_months,
        )
        tracking.log_text(json.dumps({"reasons": dict(REASONS)}, indent=2), "reason_codes.json")
    fit_df.unpersist()
    feats.unpersist()
    return out


def small_amount(tx: DataFrame, b: dict[str, datetime], s: FraudSettings) -> float:
    """The small-payment cut-off (USD): the settings' when pinned, else learnt from the
    training months' labels. It travels with the model as a registry tag, for the stream."""
    if s.small_amount_usd is not None:
        return s.small_amount_usd
    small_usd = learn_small_amount(with_split(tx, b).where(F.col("split") == "fit"), label=LABEL)
    log.info("fraud: small payments are those below %.2f USD (learnt)", small_usd)
    return small_usd


def log_split_counts(feats_df: DataFrame) -> None:
    counts = (
        feats_df.groupBy("split")
        .agg(F.count(F.lit(1)).alias("n"), F.sum(LABEL).alias("pos"))
        .collect()
    )
    tracking.log_metrics(
        {f"rows_{r['split']}": float(r["n"]) for r in counts}
        | {f"positives_{r['split']}": float(r["pos"] or 0) for r in counts}
    )


def evaluate_on_test(
    spark: SparkSession, cfg: Config, candidate: training.Candidate, s: FraudSettings
) -> dict[str, float]:
    """A kind's alert threshold (on validation scores) and what it gives on the test months:
    card-precision@k, alerts and their precision, and the truth where it is on disk."""
    kind, scored = candidate.kind, candidate.scored["test"]
    assert candidate.fitted.validation_curve is not None  # fit_classifier keeps the chosen one's
    threshold = choose_threshold(
        candidate.fitted.validation_curve,
        rule=s.threshold_rule,
        precision_target=s.precision_target,
        cost_fn=s.cost_false_negative,
        cost_fp=s.cost_false_positive,
    )
    alerts = scored.where(F.col(SCORE) >= threshold).agg(F.count(F.lit(1)), F.sum(LABEL)).first()
    assert alerts is not None  # an aggregate without grouping has one row
    out = {
        f"{kind}_card_precision_at_k": metrics.card_precision_at_k(scored, k=s.card_precision_k),
        f"{kind}_threshold": threshold,
        f"{kind}_test_alerts": float(alerts[0]),
        f"{kind}_test_alert_precision": float(alerts[1] or 0) / max(alerts[0], 1),
    }
    from cardlake.ml import evaluate

    truth = evaluate.fraud_against_truth(spark, cfg, scored_df=scored)
    if truth is not None:
        out.update({f"{kind}_{k}" if not k.startswith("best") else k: v for k, v in truth.items()})
    return out


def write_alerts(
    tables: Tables,
    tracker: tracking.Tracker,
    trained: training.Trained,
    test_df: DataFrame,
    s: FraudSettings,
    *,
    features_with: Callable[[float], DataFrame],
    small_usd: float,
    test_months: list[str],
) -> float:
    """The champion's alerts for the test months, at its own threshold and small-payment
    cut-off (a champion kept from an earlier run has its own); returns the rows written."""
    tags = tracking.version_tags(tracker, s.model_name, trained.champion_version)
    champion_small = float(tags.get(SMALL_AMOUNT_TAG, small_usd))
    if champion_small != small_usd:  # a champion kept from an earlier run: its own features
        test_df = features_with(champion_small).where(F.col("split") == "test")
    alerts_df = with_alerts(
        with_score(trained.champion, test_df),
        threshold=float(tags["threshold"]),
        model_version=trained.champion_version,
        max_reasons=s.max_reasons,
    )
    tables.replace_partitions(
        ALERTS_TABLE, alerts_df, partitions={"month": test_months}, partition_by=["month"]
    )
    return float(tables.read(ALERTS_TABLE, partitions={"month": test_months}).count())


def with_alerts(
    scored_df: DataFrame, *, threshold: float, model_version: str, max_reasons: int
) -> DataFrame:
    """The alert rows: transactions scoring at or above the threshold, with reason codes."""
    return scored_df.where(F.col(SCORE) >= threshold).select(
        "transaction_id",
        "customer_key",
        "instrument_id",
        "ts",
        "amount_usd",
        F.col(SCORE).alias("score"),
        F.lit(threshold).alias("threshold"),
        reasons_column(max_reasons).alias("reasons"),
        F.lit(model_version).alias("model_version"),
        "month",
    )


# Re-exported for the callers that knew them here before the shared module existed.
__all__ = [
    "BASE_FEATURES",
    "CATEGORICAL",
    "DAY",
    "FAILED_STATES",
    "REASONS",
    "feature_columns",
    "merchant_reports",
    "reasons_column",
    "run_fraud",
    "window_hours",
    "with_alerts",
    "with_transaction_features",
]
