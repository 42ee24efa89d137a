"""The silver job: bronze → cleaned tables, resolved customers, stable keys, crosswalk.

Entity resolution runs over every person record each time (a few thousand records per month
of history resolve in well under a minute), and keys stay stable through
:mod:`cardlake.silver.keys`. Activity tables are rewritten for the months processed only.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.config import Config
from cardlake.silver import activity, customers, keys
from cardlake.silver.schemas import PARTITIONED_BY_MONTH
from cardlake.tables import Tables

log = logging.getLogger("cardlake.silver")

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
TRUTH_KEY_SOURCES = {
    "crm_id": "crm_customers",
    "fin_id": "financial_records",
    "demo_id": "demographics",
    "app_user_id": "product_usage",
    "contact_id": "marketing_monthly",
}


def _bronze(tables: Tables) -> dict[str, DataFrame]:
    return {n: tables.read(f"bronze.{n}") for n in BRONZE_INPUTS if tables.exists(f"bronze.{n}")}


def resolve_customers(
    spark: SparkSession, bronze: dict[str, DataFrame], previous: DataFrame | None, *, month: str
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Resolves the person records into ``(crosswalk, key_events, person_records)``."""
    from cardlake.er import resolve_entities, to_person_records

    inputs = customers.person_inputs(bronze)
    records = None
    for source, (frame, mapping) in inputs.items():
        standardised = to_person_records(frame, mapping=mapping, dataset=source)
        records = standardised if records is None else records.unionByName(standardised)
    assert records is not None, "no person-bearing bronze table"
    records = records.localCheckpoint(eager=True)
    resolution = resolve_entities(spark, [records])
    entities = resolution.entities_df.withColumn(
        "source_record_id", customers.source_record_id(F.col("record_id"))
    )
    # All deliveries of one source key share it as a cross-reference, so share a cluster; the
    # smallest cluster id is a guard, not a choice.
    members = entities.groupBy(F.col("source_dataset").alias("source"), "source_record_id").agg(
        F.min("entity_id").alias("cluster"),
        F.max("match_probability").alias("match_probability"),
    )
    methods = members.select(
        "source",
        "source_record_id",
        "match_probability",
        F.when(F.col("match_probability").isNull(), "singleton")
        .when(F.col("match_probability") >= 1.0, "deterministic")
        .otherwise("probabilistic")
        .alias("match_method"),
    )
    previous_current = previous.filter("is_current") if previous is not None else None
    keyed, events = keys.assign_keys(
        members.select("cluster", "source", "source_record_id"), previous_current
    )
    crosswalk = keys.updated_crosswalk(
        keyed.select("source", "source_record_id", "customer_key"),
        previous,
        month=month,
        methods_df=methods,
    )
    person_keys = records.withColumn(
        "source_record_id", customers.source_record_id(F.col("record_id"))
    ).join(
        keyed.select(F.col("source").alias("source_dataset"), "source_record_id", "customer_key"),
        on=["source_dataset", "source_record_id"],
        how="inner",
    )
    return crosswalk, events.withColumn("month", F.lit(month)), person_keys


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


def evaluate_against_truth(
    spark: SparkSession, crosswalk: DataFrame, truth_root: str
) -> dict[str, float] | None:
    """Pairwise and B-cubed quality of the crosswalk against the generator's answer key."""
    from cardlake.er import evaluate_clusters

    path = os.path.join(truth_root, "source_keys")
    if not os.path.isdir(path):
        return None
    mapping = spark.createDataFrame(
        list(TRUTH_KEY_SOURCES.items()), "key_name string, source string"
    )
    keys_df = spark.read.parquet(path).select("key_name", "key_value", "person_id")
    truth = keys_df.join(mapping, on="key_name", how="inner").select(
        F.concat_ws(":", "source", "key_value").alias("record_id"),
        F.col("person_id").cast("string").alias("true_id"),
    )
    predicted = crosswalk.filter("is_current").select(
        F.concat_ws(":", "source", "source_record_id").alias("record_id"),
        F.col("customer_key").alias("entity_id"),
    )
    return evaluate_clusters(predicted, truth).as_dict()


def run(
    spark: SparkSession, cfg: Config, *, month: str | None = None, tables: Tables | None = None
) -> dict[str, Any]:
    """Builds silver from bronze; returns the entity-resolution metrics (when truth exists).

    Args:
        spark: the session (with Splink's settings, see :func:`cardlake.er.splink_spark_conf`).
        cfg: configuration.
        month: rewrite only this month's partitions of the activity tables; None: all months.
        tables: the lake (default: from ``cfg``).
    """
    tables = tables or Tables.from_config(spark, cfg)
    bronze = _bronze(tables)
    months = sorted(
        r[0] for r in bronze["card_transactions"].select("ingest_month").distinct().collect()
    )
    run_month = month or months[-1]
    started = time.perf_counter()
    previous = tables.read("silver.crosswalk") if tables.exists("silver.crosswalk") else None
    if previous is not None:
        previous = previous.localCheckpoint(eager=True)
    crosswalk, events, person_keys = resolve_customers(spark, bronze, previous, month=run_month)
    crosswalk = crosswalk.localCheckpoint(eager=True)
    log.info("entity resolution: %.1fs", time.perf_counter() - started)

    # No idempotency keys here: every silver table is rewritten from the same run, so a re-run
    # leaves the same rows; skipping some writes by input version (an earlier design) could
    # leave tables of two different runs side by side after a code or config change.
    def write(name: str, df: DataFrame) -> None:
        if name in PARTITIONED_BY_MONTH and month:
            tables.replace_partitions(
                f"silver.{name}",
                df.filter(F.col("month") == month),
                partitions={"month": month},
                partition_by=["month"],
            )
        else:
            tables.overwrite(
                f"silver.{name}",
                df,
                partition_by=["month"] if name in PARTITIONED_BY_MONTH else (),
            )

    write("crosswalk", crosswalk)
    if events.limit(1).count():  # only when keys merged or split: a re-run adds nothing
        tables.append("silver.key_events", events)
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
        ),
    )
    write(
        "product_usage",
        activity.product_usage(
            bronze["product_usage"], keys=keys_current.filter(F.col("source") == "product_usage")
        ),
    )
    for name, frame in activity.financial_children(
        bronze["financial_records"],
        keys=keys_current.filter(F.col("source") == "financial_records"),
    ).items():
        write(name, frame)

    metrics = evaluate_against_truth(spark, crosswalk, cfg.paths.truth_root) or {}
    if metrics:
        log.info(
            "entity resolution vs truth: pairwise P %.4f R %.4f F1 %.4f, B-cubed F1 %.4f",
            metrics["pairwise_precision"],
            metrics["pairwise_recall"],
            metrics["pairwise_f1"],
            metrics["bcubed_f1"],
        )
        row = spark.createDataFrame(
            [(run_month, k, float(v)) for k, v in sorted(metrics.items())],
            "month string, metric string, value double",
        )
        tables.replace_partitions(
            "silver.er_metrics", row, partitions={"month": run_month}, partition_by=["month"]
        )
    log.info("silver done in %.1fs", time.perf_counter() - started)
    return metrics
