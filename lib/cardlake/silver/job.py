"""The silver job: bronze → cleaned tables, resolved customers, stable keys, crosswalk.

Entity resolution is incremental once a first run has left its model
(:mod:`cardlake.silver.resolution`); keys stay stable through :mod:`cardlake.silver.keys`.
Activity tables are rewritten for the months processed only, and for the months of rows that
move between them and ``silver.unresolved_activity`` (activity of records held back because their
entity has no customer source, :mod:`cardlake.silver.resolution`). Resolution quality against the
generator's truth (when it exists) goes to ``silver.er_metrics`` and to MLflow.
"""

from __future__ import annotations

import logging
import os
import time
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.config import Settings
from cardlake.quality.layers import check_tables
from cardlake.silver import activity, customers, steps
from cardlake.silver.resolution import (
    ER_MODEL_TABLE,
    ER_RECORDS_TABLE,
    FULL,
    KEY_EVENTS_TABLE,
    CustomerResolution,
    commit_resolution,
    load_state,
    resolve_customers,
)
from cardlake.silver.schemas import PARTITIONED_BY_MONTH, SCHEMAS
from cardlake.tables import Tables, watermarks

log = logging.getLogger("cardlake.silver")

ER_METRICS_TABLE = "silver.er_metrics"
UNRESOLVED_TABLE = "silver.unresolved_activity"
TABLES = (
    *(f"silver.{name}" for name in SCHEMAS),
    KEY_EVENTS_TABLE,
    ER_METRICS_TABLE,
    ER_MODEL_TABLE,
    ER_RECORDS_TABLE,
)
"""Every table the silver stage writes (each has a suite in :mod:`cardlake.quality.layers`)."""

BRONZE_INPUTS = (
    "crm_customers",
    "financial_records",
    "demographics",
    "product_usage",
    "marketing_monthly",
    "card_transactions",
    "chargebacks",
    "service_interactions",
    "merchants",
    "fx_rates",
)
# Silver reads every bronze table whole (entity resolution needs every record): a commit with
# data in any of them rebuilds silver, where none has one since the last build nothing does.
INPUTS = tuple(
    watermarks.Input(f"bronze.{name}", reach="whole", by_content=False) for name in BRONZE_INPUTS
)
TRUTH_KEY_SOURCES = {
    "crm_id": "crm_customers",
    "fin_id": "financial_records",
    "demo_id": "demographics",
    "app_user_id": "product_usage",
    "contact_id": "marketing_monthly",
}


def _bronze(tables: Tables) -> dict[str, DataFrame]:
    return {n: tables.read(f"bronze.{n}") for n in BRONZE_INPUTS if tables.exists(f"bronze.{n}")}


def _refs(person_keys: DataFrame, crosswalk: DataFrame) -> DataFrame:
    current = crosswalk.filter("is_current")
    crm = current.filter(F.col("source") == "crm_customers").select(
        F.lit("crm").alias("ref_kind"), F.col("source_record_id").alias("ref_value"), "customer_key"
    )
    email = person_keys.filter(F.col("email_canonical").isNotNull()).select(
        F.lit("email").alias("ref_kind"),
        F.col("email_canonical").alias("ref_value"),
        "customer_key",
    )
    phone = person_keys.filter(F.col("phone").isNotNull()).select(
        F.lit("phone").alias("ref_kind"), F.col("phone").alias("ref_value"), "customer_key"
    )
    return crm.unionByName(email).unionByName(phone)


def _instruments(bronze: dict[str, DataFrame], crosswalk: DataFrame) -> DataFrame:
    current = crosswalk.filter("is_current")
    fin_keys = current.filter(F.col("source") == "financial_records").select(
        F.col("source_record_id").alias("fin_id"), "customer_key"
    )
    crm_keys = current.filter(F.col("source") == "crm_customers").select(
        F.col("source_record_id").alias("crm_id"), "customer_key"
    )
    cards = (
        bronze["financial_records"]
        .select("fin_id", F.explode("cards").alias("c"))
        .select("fin_id", F.col("c.card_token").alias("instrument_id"))
        .join(fin_keys, on="fin_id", how="inner")
    )
    wallets = (
        bronze["crm_customers"]
        .filter(F.col("wallet_id").isNotNull())
        .select("crm_id", F.col("wallet_id").alias("instrument_id"))
        .join(crm_keys, on="crm_id", how="inner")
    )
    both = cards.select("instrument_id", "customer_key").unionByName(
        wallets.select("instrument_id", "customer_key")
    )
    return both.groupBy("instrument_id").agg(F.min("customer_key").alias("customer_key"))


def delivered_records(bronze: dict[str, DataFrame]) -> DataFrame:
    """``record_id`` (``source:id``) of every person record bronze accepted."""
    frames = [
        bronze[source].select(F.concat_ws(":", F.lit(source), F.col(key)).alias("record_id"))
        for key, source in TRUTH_KEY_SOURCES.items()
        if source in bronze
    ]
    return reduce(DataFrame.unionByName, frames).distinct()


def evaluate_against_truth(
    spark: SparkSession,
    crosswalk: DataFrame,
    truth_root: str,
    *,
    delivered: DataFrame,
    held_back: DataFrame | None = None,
) -> dict[str, float] | None:
    """Pairwise and B-cubed quality of the crosswalk against the generator's answer key.

    The truth holds every record the generator issued; ``delivered`` (from
    :func:`delivered_records`) narrows it to those bronze accepted, so a record never delivered
    or rejected into quarantine is not silver's to resolve, while one bronze accepted and the
    crosswalk lacks counts as missed (``missing_records``) instead of vanishing from the figures.
    Held-back records (``(source, source_record_id)``) were resolved, into no customer: each
    counts as an entity of its own.
    """
    from cardlake.er import evaluate_clusters

    path = os.path.join(truth_root, "source_keys")
    if not os.path.isdir(path):
        return None
    mapping = spark.createDataFrame(
        list(TRUTH_KEY_SOURCES.items()), "key_name string, source string"
    )
    keys_df = spark.read.parquet(path).select("key_name", "key_value", "person_id")
    truth = (
        keys_df.join(mapping, on="key_name", how="inner")
        .select(
            F.concat_ws(":", "source", "key_value").alias("record_id"),
            F.col("person_id").cast("string").alias("true_id"),
        )
        .join(delivered.select("record_id"), on="record_id", how="left_semi")
    )
    predicted = crosswalk.filter("is_current").select(
        F.concat_ws(":", "source", "source_record_id").alias("record_id"),
        F.col("customer_key").alias("entity_id"),
    )
    if held_back is not None:
        record_id = F.concat_ws(":", "source", "source_record_id")
        predicted = predicted.unionByName(
            held_back.select(
                record_id.alias("record_id"), F.concat(F.lit("held:"), record_id).alias("entity_id")
            )
        )
    return evaluate_clusters(predicted, truth).as_dict()


def run(
    tables: Tables,
    settings: Settings,
    *,
    month: str | None = None,
    full_resolve: bool = False,
) -> dict[str, Any] | str:
    """Builds silver from bronze; returns the entity-resolution metrics (when truth exists).

    Args:
        tables: the lake (its session carries Splink's settings, see
            :func:`cardlake.er.splink_spark_conf`).
        settings: loaded at the edge; reads the truth root and the tracking settings.
        month: rewrite only this month's partitions of the activity tables; None: all months,
            unless no bronze table has had a commit with data since the last such build (the
            commit log, :mod:`cardlake.tables.watermarks`) and silver's code is the same: then
            nothing is recomputed and the reason is returned instead of the metrics.
        full_resolve: resolve every person record again instead of only the new ones.

    Raises:
        DataQualityError: a critical expectation of a silver table failed (results recorded in
            ``_ops.dq_results``; exit code 1).
    """
    spark, cfg = tables.spark, settings.config
    plan = None
    if month is None:
        plan = watermarks.plan(
            tables, "silver", INPUTS, recipe=recipe(), months=(), force=full_resolve
        )
        log.info("silver plan: %s (%s)", plan.mode, plan.reason)
        if plan.mode == "skip":
            watermarks.record(tables, plan)
            return f"nothing recomputed: {plan.reason}"
    bronze = _bronze(tables)
    months = sorted(
        r[0] for r in bronze["card_transactions"].select("ingest_month").distinct().collect()
    )
    run_month = month or months[-1]
    started = time.perf_counter()
    resolved = resolve_customers(
        spark, bronze, load_state(tables), month=run_month, full=full_resolve
    )
    crosswalk, person_keys = resolved.crosswalk, resolved.person_keys
    # Several person records (identities) of one source record are one held-back record.
    held_back = (
        resolved.held_back.select(F.col("source_dataset").alias("source"), "source_record_id")
        .distinct()
        .localCheckpoint(eager=True)
    )
    held_rows = activity.unresolved_activity(
        bronze["product_usage"], bronze["marketing_monthly"], held_back=held_back
    ).localCheckpoint(eager=True)
    # A monthly run also rewrites the months of rows held back before or now: a row let in (or
    # held back) is then in one of product_usage, marketing_monthly and unresolved_activity.
    moved = _months(held_rows)
    if month and tables.exists(UNRESOLVED_TABLE):
        moved |= _months(tables.read(UNRESOLVED_TABLE))
    activity_months = sorted(moved | {month}) if month else []

    # No idempotency keys here (the key events aside): every silver table is rewritten from the
    # same run, so a re-run leaves the same rows; skipping some writes by input version (an
    # earlier design) could leave tables of two different runs side by side after a code or
    # config change.
    def write(name: str, df: DataFrame, *, months: list[str] | None = None) -> None:
        steps.step(f"before_{name}")
        began = time.perf_counter()
        if name in PARTITIONED_BY_MONTH and month:
            months = months or [month]
            tables.replace_partitions(
                f"silver.{name}",
                df.filter(F.col("month").isin(*months)),
                partitions={"month": months},
                partition_by=["month"],
            )
        else:
            tables.overwrite(
                f"silver.{name}",
                df,
                partition_by=["month"] if name in PARTITIONED_BY_MONTH else (),
            )
        log.info("silver.%s written in %.1fs", name, time.perf_counter() - began)

    commit_resolution(
        spark, tables, resolved, month=run_month, write_crosswalk=lambda df: write("crosswalk", df)
    )
    candidates = customers.candidates(bronze, crosswalk).localCheckpoint(eager=True)
    snapshots = customers.golden_snapshots(candidates, months=months).localCheckpoint(eager=True)
    write("customer_snapshots", snapshots)
    current = customers.current_customers(snapshots)
    write("customers", current)

    fx = activity.fx_rates(bronze["fx_rates"])
    write("fx_rates", fx)
    write("merchants", activity.merchants(bronze["merchants"]))
    keys_current = crosswalk.filter("is_current")
    write(
        "transactions",
        activity.transactions(
            bronze["card_transactions"],
            instruments=_instruments(bronze, crosswalk),
            fx=fx,
            customers=current,
            chargebacks=bronze["chargebacks"],
        ),
    )
    write(
        "interactions",
        activity.interactions(bronze["service_interactions"], refs=_refs(person_keys, crosswalk)),
    )
    write(
        "marketing_monthly",
        activity.marketing_monthly(
            bronze["marketing_monthly"],
            keys=keys_current.filter(F.col("source") == "marketing_monthly"),
            held_back=held_back,
        ),
        months=activity_months,
    )
    write(
        "product_usage",
        activity.product_usage(
            bronze["product_usage"],
            keys=keys_current.filter(F.col("source") == "product_usage"),
            held_back=held_back,
        ),
        months=activity_months,
    )
    # After the tables rows are let into: a run that dies between them finds the months of the
    # rows it let in still listed here, and rewrites them.
    write("unresolved_activity", held_rows, months=activity_months)
    for name, frame in activity.financial_children(
        bronze["financial_records"],
        keys=keys_current.filter(F.col("source") == "financial_records"),
    ).items():
        write(name, frame)

    metrics = (
        evaluate_against_truth(
            spark,
            crosswalk,
            cfg.paths.truth_root,
            delivered=delivered_records(bronze),
            held_back=held_back,
        )
        or {}
    )
    if metrics:
        log.info(
            "entity resolution vs truth: pairwise P %.4f R %.4f F1 %.4f, B-cubed F1 %.4f",
            metrics["pairwise_precision"],
            metrics["pairwise_recall"],
            metrics["pairwise_f1"],
            metrics["bcubed_f1"],
        )
    held = {
        "held_back_records": float(held_back.count()),
        "held_back_rows": float(held_rows.count()),
    }
    if held["held_back_records"]:
        log.warning(
            "held back %d person record(s) linked to no customer source, %d activity row(s) "
            "(silver.unresolved_activity)",
            held["held_back_records"],
            held["held_back_rows"],
        )
    figures = {**metrics, **_run_figures(resolved), **held}
    row = spark.createDataFrame(
        [(run_month, k, float(v)) for k, v in sorted(figures.items())],
        "month string, metric string, value double",
    )
    steps.step("before_er_metrics")
    tables.replace_partitions(
        ER_METRICS_TABLE, row, partitions={"month": run_month}, partition_by=["month"]
    )
    steps.step("before_mlflow")
    _log_to_mlflow(settings, resolved, figures, month=run_month)
    steps.step("before_checks")
    check_tables(tables, cfg, TABLES)
    steps.step("before_watermark")
    if plan is not None:
        watermarks.record(tables, plan)
    log.info("silver done in %.1fs", time.perf_counter() - started)
    return metrics


def _months(df: DataFrame) -> set[str]:
    """The months of a table's rows (a few dozen at most)."""
    return {r[0] for r in df.select("month").distinct().collect()}


def recipe() -> str:
    """Silver's code and the matcher's: a new version of either rebuilds silver."""
    import cardlake.er
    import cardlake.months
    import cardlake.silver

    return watermarks.recipe_digest([cardlake.er, cardlake.months, cardlake.silver])


def _run_figures(resolved: CustomerResolution) -> dict[str, float]:
    return {
        "records": float(resolved.records),
        "new_records": float(resolved.new_records),
        "incremental": float(resolved.mode != FULL),
        "resolution_seconds": round(resolved.seconds, 1),
    }


def _log_to_mlflow(
    settings: Settings, resolved: CustomerResolution, figures: dict[str, float], *, month: str
) -> None:
    """One run per silver build in the ``<prefix>-entity-resolution`` experiment."""
    import mlflow

    from cardlake.tracking import Tracker, TrackingSettings

    tracker = Tracker.configure(settings.config.paths.lake_root, settings.of(TrackingSettings))
    with tracker.run("entity-resolution", f"silver {month} ({resolved.mode})"):
        mlflow.log_params(
            {
                "month": month,
                "mode": resolved.mode,
                "threshold_match_probability": resolved.threshold,
            }
        )
        mlflow.log_metrics(figures)
