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
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.errors import JobFailed
from cardlake.ml import metrics, plots, tracking
from cardlake.ml.common import (
    LABEL,
    SCORE,
    Fitted,
    champion_for_scoring,
    drivers,
    fit_classifier,
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
    started = time.perf_counter()
    version = tables.version(TRANSACTIONS_TABLE)
    tx = tables.read(TRANSACTIONS_TABLE, version=version)
    months = [r[0] for r in tx.select("month").distinct().collect()]
    b = split_bounds(months, s)
    numeric = feature_columns(s)
    # Small payments are those below a cut-off learnt from the training months' labels (unless
    # the settings pin one); it travels with the model as a registry tag, for the stream.
    small_usd = s.small_amount_usd
    if small_usd is None:
        small_usd = learn_small_amount(
            with_split(tx, b).where(F.col("split") == "fit"), label=LABEL
        )
        log.info("fraud: small payments are those below %.2f USD (learnt)", small_usd)
    feats = features(tx, b, settings=s, small_amount_usd=small_usd).cache()
    sampled = (F.col(LABEL) == 1) | (hash_share(F.col("transaction_id"), seed) < s.negative_sample)
    fit_df = with_class_weight(feats.where((F.col("split") == "fit") & sampled)).cache()
    valid_df = feats.where(F.col("split") == "valid")
    test_df = feats.where(F.col("split") == "test")
    out: dict[str, float] = {}
    with tracker.run("fraud", "fraud") as run:
        tracking.log_params({"seed": seed, **{f"fraud.{k}": v for k, v in vars(s).items()}})
        tracking.log_metrics({"small_amount_usd": small_usd})
        tracking.log_params({f"split.{k}": v.isoformat() for k, v in b.items()})
        tracking.log_data_versions({TRANSACTIONS_TABLE: version})
        counts = (
            feats.groupBy("split")
            .agg(F.count(F.lit(1)).alias("n"), F.sum(LABEL).alias("pos"))
            .collect()
        )
        tracking.log_metrics(
            {f"rows_{r['split']}": float(r["n"]) for r in counts}
            | {f"positives_{r['split']}": float(r["pos"] or 0) for r in counts}
        )
        fitted: dict[str, Fitted] = {}
        curves: dict[str, metrics.Curve] = {}
        thresholds: dict[str, float] = {}
        calib: dict[str, pd.DataFrame] = {}
        for kind, grid in (("lr", s.lr_grid), ("gbt", s.gbt_grid)):
            model = fit_classifier(
                kind,
                fit_df=fit_df,
                valid_df=valid_df,
                numeric=numeric,
                categorical=CATEGORICAL,
                grid=grid,
                seed=seed,
                gbt_step=s.gbt_step_size,
                weighted=True,
                select_on="pr_auc",
            )
            fitted[kind] = model
            tracking.log_params({f"{kind}.best.{k}": v for k, v in model.params.items()})
            tracking.log_frame(pd.DataFrame(model.grid_results), f"{kind}_grid.csv")
            assert model.validation_curve is not None  # fit_classifier keeps the chosen one's
            thresholds[kind] = choose_threshold(
                model.validation_curve,
                rule=s.threshold_rule,
                precision_target=s.precision_target,
                cost_fn=s.cost_false_negative,
                cost_fp=s.cost_false_positive,
            )
            scored = with_score(model.model, test_df).cache()
            curves[kind] = metrics.score_curve(scored)
            calib[kind] = metrics.calibration_table(scored)
            out[f"{kind}_test_auc"] = metrics.auc(curves[kind])
            out[f"{kind}_test_ap"] = metrics.average_precision(curves[kind])
            out[f"{kind}_card_precision_at_k"] = metrics.card_precision_at_k(
                scored, k=s.card_precision_k
            )
            out[f"{kind}_threshold"] = thresholds[kind]
            alerts = (
                scored.where(F.col(SCORE) >= thresholds[kind])
                .agg(F.count(F.lit(1)), F.sum(LABEL))
                .first()
            )
            assert alerts is not None  # an aggregate without grouping has one row
            out[f"{kind}_test_alerts"] = float(alerts[0])
            out[f"{kind}_test_alert_precision"] = float(alerts[1] or 0) / max(alerts[0], 1)
            out[f"{kind}_training_seconds"] = model.seconds
            from cardlake.ml import evaluate

            truth = evaluate.fraud_against_truth(spark, cfg, scored_df=scored)
            if truth is not None:
                out.update(
                    {f"{kind}_{k}" if not k.startswith("best") else k: v for k, v in truth.items()}
                )
            scored.unpersist()
            weights = drivers(model, fit_df)
            tracking.log_frame(weights.rename_axis("feature").reset_index(), f"{kind}_drivers.csv")
            plots.log_png(
                plots.importance_figure(weights, f"Fraud drivers ({kind})"), f"{kind}_drivers.png"
            )
        plots.log_png(plots.roc_figure(curves, "ROC (test months)"), "roc_test.png")
        plots.log_png(plots.pr_figure(curves, "Precision-recall (test months)"), "pr_test.png")
        plots.log_png(
            plots.gains_figure(curves, "Cumulative gains (test months)"), "gains_test.png"
        )
        plots.log_png(
            plots.calibration_figure(calib, "Calibration (test months)"), "calibration_test.png"
        )
        chosen = max(fitted, key=lambda k: fitted[k].validation["pr_auc"])
        sample = fit_df.select(*CATEGORICAL, *numeric).limit(5).toPandas()
        uri = tracking.log_spark_model(
            fitted[chosen].model, sample, pd.DataFrame({SCORE: [0.5] * len(sample)})
        )
        promotion = tracking.register_and_promote(
            tracker,
            name=s.model_name,
            model_uri=uri,
            metric="test_auc",
            value=out[f"{chosen}_test_auc"],
            tags={
                "threshold": repr(thresholds[chosen]),
                "kind": chosen,
                SMALL_AMOUNT_TAG: repr(small_usd),
            },
        )
        champion, champion_version = champion_for_scoring(promotion, fitted[chosen].model)
        tags = tracking.version_tags(tracker, s.model_name, champion_version)
        threshold = float(tags["threshold"])
        champion_small = float(tags.get(SMALL_AMOUNT_TAG, small_usd))
        if champion_small != small_usd:  # a champion kept from an earlier run: its own features
            test_df = features(tx, b, settings=s, small_amount_usd=champion_small).where(
                F.col("split") == "test"
            )
        alerts_df = with_alerts(
            with_score(champion, test_df),
            threshold=threshold,
            model_version=champion_version,
            max_reasons=s.max_reasons,
        )
        test_months = sorted(m for m in months if m >= b["test_start"].strftime("%Y-%m"))
        tables.replace_partitions(
            ALERTS_TABLE, alerts_df, partitions={"month": test_months}, partition_by=["month"]
        )
        out["alerts_written"] = float(
            tables.read(ALERTS_TABLE, partitions={"month": test_months}).count()
        )
        tracking.log_text(json.dumps({"reasons": dict(REASONS)}, indent=2), "reason_codes.json")
        out["promoted"] = float(promotion.promoted)
        out["training_seconds"] = time.perf_counter() - started
        tracking.log_metrics(out)
        log.info("fraud run %s: %s", run.info.run_id, out)
    fit_df.unpersist()
    feats.unpersist()
    return out


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
