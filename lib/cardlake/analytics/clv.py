"""Predictive customer lifetime value: BG/NBD purchase frequency with Gamma-Gamma spend.

A *purchase* is one day on which a customer made completed card purchases (debits); its value
is that day's spend in USD. Per customer, up to an observation end (the last day of a month):

=================  ================================================================
``frequency``      repeat purchase days (purchase days - 1)
``recency``        days from the first purchase day to the last
``T``              days from the first purchase day to the observation end
``monetary_value`` mean value of the repeat purchase days (0 without repeats)
=================  ================================================================

Spark reduces the transactions to that one row per customer; pandas and ``pymc-marketing``
fit BG/NBD (``BetaGeoModel``) and Gamma-Gamma (``GammaGammaModel``) by maximum a posteriori,
which takes seconds where MCMC would take minutes. Up to
``FAST_COMPILE_MAX_CUSTOMERS`` customers the fit compiles its functions in PyTensor's
``FAST_COMPILE`` mode: the optimiser evaluates a small graph a few dozen times, so compiling it
to C (about 35 s on a cold compile cache, as on every fresh machine and CI) costs more than it
saves. On more customers the C code pays for itself. ``bench/bench_clv.py``, fit seconds on a
cold cache, FAST_COMPILE against C: 2,000 customers 9.1 against 43.8; 20,000, 27.9 against
44.2; 60,000, 68.9 against 44.3; 200,000, 210.6 against 46.5.

Validation: fitted on the history up to ``holdout_months`` before the last month, the model's
expected spend in those last months is compared per customer with the actual spend, and so is
the naive estimate "the next period equals the last period of equal length". Then the model is
refitted on all history and ``gold.customer_clv`` holds, per customer, the expected purchases
and spend over ``horizon_months`` and ``clv_usd``: that spend times the margin the bank keeps,
discounted monthly (the margin and the discount are gold's, the ones of the fixed formula this
replaces, so both read in the same unit).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cardlake.ml.settings import ClvSettings
from cardlake.months import month_end, shift

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    from cardlake.tables import Tables
    from cardlake.tracking import Tracker

log = logging.getLogger("cardlake.analytics")

OUTPUT_TABLE = "gold.customer_clv"
FACT_TABLE = "gold.fact_transactions"
EXPERIMENT = "clv"  # the tracker names it <prefix>-clv: cardlake-clv
DAYS_PER_MONTH = 365.25 / 12
DECILES = 10
SUMMARY_COLUMNS = ("customer_key", "frequency", "recency", "T", "monetary_value")
FAST_COMPILE_MAX_CUSTOMERS = 20_000


def compile_mode(customers: int) -> str:
    """PyTensor's compile mode for a fit on ``customers`` (the module's docstring says why)."""
    return "FAST_COMPILE" if customers <= FAST_COMPILE_MAX_CUSTOMERS else "FAST_RUN"


def card_purchase_days(fact_tx_df: DataFrame) -> DataFrame:
    """Completed card purchases summed per customer and day: ``customer_key, day, month,
    value_usd``."""
    return (
        fact_tx_df.where(
            (F.col("instrument_type") == "card")
            & (F.col("state") == "completed")
            & (F.col("direction") == "debit")
            & F.col("customer_key").isNotNull()
            & (F.col("amount_usd") > 0)
        )
        .groupBy("customer_key", F.to_date("ts").alias("day"), "month")
        .agg(F.sum("amount_usd").alias("value_usd"))
        .select("customer_key", "day", "month", "value_usd")
    )


def rfm_summary(purchase_days_df: DataFrame, *, through_month: str) -> DataFrame:
    """One row per customer who purchased up to ``through_month``, observed to its last day.

    Returns:
        ``customer_key, frequency, recency, T, monetary_value`` (times in days).
    """
    end = month_end(F.lit(through_month))
    days = purchase_days_df.where(F.col("month") <= through_month)
    per_customer = days.groupBy("customer_key").agg(
        F.count(F.lit(1)).alias("_days"),
        F.min("day").alias("_first"),
        F.max("day").alias("_last"),
        F.sum("value_usd").alias("_total"),
        F.min_by("value_usd", "day").alias("_first_value"),
    )
    frequency = F.col("_days") - 1
    return per_customer.select(
        "customer_key",
        frequency.cast("double").alias("frequency"),
        F.datediff("_last", "_first").cast("double").alias("recency"),
        F.datediff(end, "_first").cast("double").alias("T"),
        F.when(frequency > 0, (F.col("_total") - F.col("_first_value")) / frequency)
        .otherwise(F.lit(0.0))
        .alias("monetary_value"),
    )


def spend_between(purchase_days_df: DataFrame, *, first_month: str, last_month: str) -> DataFrame:
    """Each customer's card spend in ``first_month..last_month``: ``customer_key, value_usd``."""
    return (
        purchase_days_df.where(F.col("month").between(first_month, last_month))
        .groupBy("customer_key")
        .agg(F.sum("value_usd").alias("value_usd"))
        .select("customer_key", "value_usd")
    )


@dataclass(frozen=True)
class Fitted:
    """A fitted BG/NBD and Gamma-Gamma pair and the customers they were fitted on."""

    purchases: BetaGeoModel
    spend: GammaGammaModel
    customers: int
    repeat_customers: int

    def params(self) -> dict[str, float]:
        """The point estimates, for the run's record."""
        out = {}
        for prefix, model in (("bgnbd", self.purchases), ("gamma_gamma", self.spend)):
            for name, value in model.fit_result.data_vars.items():
                out[f"{prefix}.{name}"] = float(value.values.mean())
        return out


def _model_frame(summary: pd.DataFrame) -> pd.DataFrame:
    # pymc-marketing names the customer column customer_id; the index keeps the row order.
    frame = summary.loc[:, list(SUMMARY_COLUMNS)].rename(columns={"customer_key": "customer_id"})
    return frame.reset_index(drop=True)


def fit(summary: pd.DataFrame, *, seed: int, fit_customers: int, mode: str | None = None) -> Fitted:
    """Fits BG/NBD on every customer of ``summary`` (a seeded sample of ``fit_customers`` when
    there are more) and Gamma-Gamma on those with repeat purchases, by MAP, compiled in
    PyTensor's ``mode`` (:func:`compile_mode` of the customers fitted when None).

    Raises:
        ValueError: no customer has a repeat purchase (Gamma-Gamma has nothing to learn from).
    """
    import pytensor
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    frame = _model_frame(summary)
    if len(frame) > fit_customers:
        frame = frame.sample(n=fit_customers, random_state=seed).reset_index(drop=True)
    repeat = frame[frame["frequency"] > 0].reset_index(drop=True)
    if repeat.empty:
        raise ValueError("no customer has a repeat purchase: the spend model cannot be fitted")
    mode = mode or compile_mode(len(frame))
    with warnings.catch_warnings(), pytensor.config.change_flags(mode=mode):
        warnings.simplefilter("ignore")  # BLAS and deprecation notices, once per process
        purchases = BetaGeoModel()
        purchases.fit(
            data=frame[["customer_id", "frequency", "recency", "T"]],
            method="map",
            progressbar=False,
        )
        spend = GammaGammaModel()
        spend.fit(
            data=repeat[["customer_id", "frequency", "monetary_value"]],
            method="map",
            progressbar=False,
        )
    return Fitted(
        purchases=purchases, spend=spend, customers=len(frame), repeat_customers=len(repeat)
    )


def _point(values: xr.DataArray) -> np.ndarray:
    # MAP leaves one chain of one draw; its mean is the point estimate.
    return np.asarray(values.mean(("chain", "draw")).values, dtype=float)


def predict(
    fitted: Fitted,
    summary: pd.DataFrame,
    *,
    months: int,
    margin_rate: float = 1.0,
    monthly_discount: float = 0.0,
) -> pd.DataFrame:
    """Each customer's outlook over the next ``months``.

    Returns:
        ``customer_key, prob_alive, expected_purchases, expected_avg_value_usd,
        expected_value_usd`` (undiscounted spend) and ``clv_usd`` (spend x ``margin_rate``,
        each month's share discounted at ``monthly_discount``), in ``summary``'s order.
    """
    frame = _model_frame(summary)
    data = frame[["customer_id", "frequency", "recency", "T"]]
    cumulative = [np.zeros(len(frame))]
    for k in range(1, months + 1):  # closed form: one vectorised evaluation per month
        cumulative.append(
            _point(fitted.purchases.expected_purchases(data=data, future_t=k * DAYS_PER_MONTH))
        )
    by_month = np.diff(np.vstack(cumulative), axis=0)
    discount = (1.0 + monthly_discount) ** -np.arange(1, months + 1)
    avg_value = _point(
        fitted.spend.expected_customer_spend(frame[["customer_id", "frequency", "monetary_value"]])
    )
    expected = cumulative[-1]
    return pd.DataFrame(
        {
            "customer_key": summary["customer_key"].to_numpy(),
            "prob_alive": _point(fitted.purchases.expected_probability_alive(data=data)),
            "expected_purchases": expected,
            "expected_avg_value_usd": avg_value,
            "expected_value_usd": expected * avg_value,
            "clv_usd": (discount @ by_month) * avg_value * margin_rate,
        }
    )


def validation_frame(
    summary: pd.DataFrame, predicted: pd.DataFrame, *, actual: pd.DataFrame, naive: pd.DataFrame
) -> pd.DataFrame:
    """Per customer of ``summary``: ``predicted``, ``actual`` and ``naive`` value (0 when a
    customer did not buy in a window)."""
    out = summary[["customer_key"]].merge(
        predicted[["customer_key", "expected_value_usd"]], on="customer_key", how="left"
    )
    for name, frame in (("actual", actual), ("naive", naive)):
        out = out.merge(frame.rename(columns={"value_usd": name}), on="customer_key", how="left")
    out = out.rename(columns={"expected_value_usd": "predicted"})
    return out.fillna({"actual": 0.0, "naive": 0.0})


def validation_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """Mean absolute error per customer and relative error of the total, for the model and
    the naive estimate, against ``actual``."""
    total = float(frame["actual"].sum())
    out = {"holdout_customers": float(len(frame)), "holdout_actual_total_usd": total}
    for name in ("predicted", "naive"):
        label = "model" if name == "predicted" else "naive"
        error = frame[name] - frame["actual"]
        out[f"{label}_mae_usd"] = float(error.abs().mean())
        out[f"{label}_total_usd"] = float(frame[name].sum())
        out[f"{label}_total_error_pct"] = (
            100.0 * float(error.sum()) / total if total else float("nan")
        )
    return out


def decile_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean predicted, naive and actual value by decile of the prediction (1 = lowest)."""
    ranks = frame["predicted"].rank(method="first")
    deciles = np.ceil(ranks * DECILES / len(frame)).astype(int) if len(frame) else ranks
    return (
        frame.assign(decile=deciles)
        .groupby("decile", as_index=False)[["predicted", "naive", "actual"]]
        .mean()
    )


def decile_figure(table: pd.DataFrame, title: str) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(table["decile"], table["actual"], "o-", label="actual")
    ax.plot(table["decile"], table["predicted"], "s--", label="BG/NBD + Gamma-Gamma")
    ax.plot(table["decile"], table["naive"], "^:", label="naive (last period)")
    ax.set(
        xlabel="decile of predicted value", ylabel="mean card spend per customer (USD)", title=title
    )
    ax.legend(fontsize=8)
    return fig


def validate(
    purchase_days_df: DataFrame,
    *,
    last_month: str,
    holdout_months: int,
    seed: int,
    fit_customers: int,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Fits up to ``holdout_months`` before ``last_month`` and scores the holdout.

    Returns:
        The metrics of :func:`validation_metrics` (with the cut-off's fit sizes) and the
        decile table.
    """
    cutoff = shift(last_month, -holdout_months)
    summary = rfm_summary(purchase_days_df, through_month=cutoff).toPandas()
    fitted = fit(summary, seed=seed, fit_customers=fit_customers)
    predicted = predict(fitted, summary, months=holdout_months)
    actual = spend_between(
        purchase_days_df, first_month=shift(cutoff, 1), last_month=last_month
    ).toPandas()
    naive = spend_between(
        purchase_days_df, first_month=shift(cutoff, 1 - holdout_months), last_month=cutoff
    ).toPandas()
    frame = validation_frame(summary, predicted, actual=actual, naive=naive)
    return validation_metrics(frame), decile_table(frame)


def run_clv(
    tables: Tables,
    *,
    month: str | None,
    settings: ClvSettings,
    seed: int,
    margin_rate: float,
    monthly_discount: float,
    tracker: Tracker,
) -> dict[str, float]:
    """Validates, refits on all history up to ``month`` (the latest when None) and writes
    ``gold.customer_clv``, one MLflow run in ``<prefix>-clv``.

    Returns:
        Rows written and the validation metrics (empty when there are no transactions).
    """
    from cardlake.ml import plots, tracking

    holdout_months, horizon_months = settings.holdout_months, settings.horizon_months
    started = time.perf_counter()
    version = tables.version(FACT_TABLE)
    fact = tables.read(FACT_TABLE, version=version)
    if month is not None:
        fact = fact.where(F.col("month") <= month)
    days = card_purchase_days(fact).localCheckpoint()
    found = days.agg(F.max("month"), F.min("month")).first()
    if found is None or found[0] is None:
        log.info("no card purchases; %s not built", OUTPUT_TABLE)
        return {}
    last_month, first_month = found[0], found[1]
    out: dict[str, float] = {}
    with tracker.run(EXPERIMENT, "bgnbd-gamma-gamma-map") as run:
        import pymc_marketing

        tracking.log_params(
            {
                "seed": seed,
                "last_month": last_month,
                "first_month": first_month,
                "cutoff_month": shift(last_month, -holdout_months),
                "margin_rate": margin_rate,
                "monthly_discount": monthly_discount,
                "fit_method": "map",
                "pymc_marketing": pymc_marketing.__version__,
                **{f"clv.{k}": v for k, v in vars(settings).items()},
            }
        )
        tracking.log_data_versions({FACT_TABLE: version})
        if shift(last_month, -holdout_months) >= first_month:
            metrics, deciles = validate(
                days,
                last_month=last_month,
                holdout_months=holdout_months,
                seed=seed,
                fit_customers=settings.fit_customers,
            )
            out.update(metrics)
            tracking.log_frame(deciles, "holdout_deciles.csv")
            plots.log_png(
                decile_figure(
                    deciles, f"Holdout {holdout_months} months to {last_month}: value by decile"
                ),
                "holdout_deciles.png",
            )
        else:
            log.warning(
                "%s: history too short for a %d-month holdout; not validated",
                OUTPUT_TABLE,
                holdout_months,
            )
        summary = rfm_summary(days, through_month=last_month).toPandas()
        fitted = fit(summary, seed=seed, fit_customers=settings.fit_customers)
        tracking.log_metrics({f"param.{k}": v for k, v in fitted.params().items()})
        predicted = predict(
            fitted,
            summary,
            months=horizon_months,
            margin_rate=margin_rate,
            monthly_discount=monthly_discount,
        )
        result = tables.spark.createDataFrame(predicted).select(
            "customer_key",
            F.lit(last_month).alias("month"),
            "prob_alive",
            "expected_purchases",
            "expected_avg_value_usd",
            "expected_value_usd",
            "clv_usd",
            F.lit(horizon_months).alias("horizon_months"),
            F.lit(f"pymc-marketing {pymc_marketing.__version__} BG/NBD+Gamma-Gamma MAP").alias(
                "model_version"
            ),
            F.lit(run.info.run_id).alias("model_run_id"),
        )
        tables.overwrite(OUTPUT_TABLE, result)
        out["rows"] = float(tables.read(OUTPUT_TABLE).count())
        out["fit_customers"] = float(fitted.customers)
        out["fit_repeat_customers"] = float(fitted.repeat_customers)
        out["training_seconds"] = time.perf_counter() - started
        tracking.log_metrics(out)
        log.info("clv run %s: %s", run.info.run_id, out)
    return out
