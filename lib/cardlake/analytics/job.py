"""The analysts' stage: gold tables built after the models, in one pass.

Runs after ``ml`` in the pipeline, so the tables that depend on model outputs (fraud alerts,
risk tiers, segments) read this run's outputs, not the previous run's: one run of a month gives
final figures and a second run of it gives the same. A month's run rewrites that month's
partitions only; a full run (no month) rebuilds every month.

=========================  ============================  ======================================
table                      grain                         answers
=========================  ============================  ======================================
``kpi_model_monthly``      month                         alerts raised, their precision and
                                                         recall so far, risk tiers
``segment_monthly``        month x segment               segment sizes, profiles, migration
``customer_rfm``           customer x month              R/F/M quintiles and RFM group
``kpi_service_monthly``    month x channel x topic       contacts per customer, resolution
                                                         time, repeats within 7 days,
                                                         complaints (``all`` rows roll up)
``kpi_service_workload``   month x weekday x hour        contacts to staff for
``kpi_debt_monthly``       month x breakdown x value     debt by type, status, age band and
                                                         segment; amounts, DTI, delinquency
``customer_360``           customer (current)            everything known about a customer
``service_note_topics``    service note                  topic and sentiment read from the
                                                         note's text (``cardlake.ml.text``)
``customer_clv``           customer (latest month)       expected purchases, spend and lifetime
                                                         value (``cardlake.analytics.clv``)
=========================  ============================  ======================================
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from cardlake.analytics import clv, customer360, debt, model_kpis, rfm, segments, service
from cardlake.config import Settings
from cardlake.gold.months import shift, window
from cardlake.ml.segmentation import behaviour_features
from cardlake.ml.settings import MlSettings
from cardlake.ml.text import OUTPUT_TABLE as NOTE_TOPICS_TABLE
from cardlake.quality.layers import check_tables
from cardlake.tables import Tables
from cardlake.threads import in_parallel

log = logging.getLogger("cardlake.analytics")

TABLES = (
    "kpi_model_monthly",
    "segment_monthly",
    "customer_rfm",
    "kpi_service_monthly",
    "kpi_service_workload",
    "kpi_debt_monthly",
)
ALERTS_SCHEMA = "transaction_id string, customer_key string, amount_usd double, month string"
RISK_SCHEMA = "customer_key string, month string, tier string"
SEGMENTS_SCHEMA = "customer_key string, month string, segment string"


def _read(
    tables: Tables, name: str, months: Sequence[str] | None, empty: str | StructType | None = None
) -> DataFrame:
    """``name`` (pruned to ``months``); empty with ``empty``'s schema when it does not exist."""
    if not tables.exists(name):
        if empty is None:
            raise FileNotFoundError(f"{name} does not exist: run the stages before analytics")
        log.warning("%s does not exist yet; treated as empty", name)
        return tables.spark.createDataFrame([], empty)
    if months is None:
        return tables.read(name)
    return tables.read(name, partitions={"month": list(months)})


def _write(tables: Tables, name: str, df: DataFrame, months: Sequence[str] | None) -> None:
    if months is None:
        tables.overwrite(f"gold.{name}", df, partition_by=["month"])
    else:
        tables.replace_partitions(
            f"gold.{name}",
            df.where(F.col("month").isin(list(months))),
            partitions={"month": list(months)},
            partition_by=["month"],
        )


def build(tables: Tables, ml: MlSettings, *, month: str | None) -> dict[str, DataFrame]:
    """The analysts' tables for ``month`` (every month when None), as DataFrames."""
    from cardlake.silver.schemas import SCHEMAS as SILVER

    months = [month] if month else None
    with_previous = [shift(month, -1), month] if month else None
    seg = ml.segmentation
    tx_window = window(month, seg.window_months) if month else None
    features = _read(tables, "gold.customer_monthly_features", months)
    fact_tx = _read(tables, "gold.fact_transactions", months)
    segments_df = _read(tables, "gold.customer_segments", with_previous, SEGMENTS_SCHEMA)
    behaviour = behaviour_features(
        _read(tables, "gold.fact_transactions", tx_window), window_months=seg.window_months
    )
    interactions = _read(tables, "silver.interactions", with_previous, SILVER["interactions"])
    out = {
        "kpi_model_monthly": model_kpis.kpi_model_monthly(
            fact_tx,
            fraud_alerts_df=_read(tables, "gold.fraud_alerts", months, ALERTS_SCHEMA),
            customer_risk_df=_read(tables, "gold.customer_risk", months, RISK_SCHEMA),
        ),
        "segment_monthly": segments.segment_monthly(
            segments_df, behaviour_df=behaviour, profile_columns=list(seg.features)
        ),
        "customer_rfm": rfm.customer_rfm(features),
        "kpi_service_monthly": service.kpi_service_monthly(interactions, months=months),
        "kpi_service_workload": service.kpi_service_workload(
            interactions if months is None else interactions.where(F.col("month").isin(months))
        ),
        "kpi_debt_monthly": debt.kpi_debt_monthly(
            _read(tables, "silver.debts", None, SILVER["debts"]),
            features_df=features,
            customers_df=_read(tables, "silver.customers", None, SILVER["customers"]),
            segments_df=segments_df,
        ),
    }
    return out


def run(tables: Tables, settings: Settings, *, month: str | None = None) -> dict[str, int]:
    """Builds the analysts' tables from gold, silver and the models' outputs.

    Args:
        tables: the lake.
        settings: loaded at the edge; reads ``MlSettings`` (the segmentation's window and
            features, for segment profiles).
        month: ``YYYY-MM`` to rewrite only that month's partitions; None for every month.

    Returns:
        Rows written per table.

    Raises:
        DataQualityError: a critical expectation of a table written here failed (results
            recorded in ``_ops.dq_results``; exit code 1).
    """
    ml = settings.of(MlSettings)
    months = [month] if month else None

    def note_topics() -> dict[str, int]:
        if not tables.exists("silver.interactions"):
            return {}
        from cardlake.ml import text, tracking

        tracker = tracking.Tracker.configure(settings.config.paths.lake_root, ml.tracking)
        figures = text.run_text(
            tables.spark, settings.config, tables=tables, settings=ml, tracker=tracker, month=month
        )
        return {"service_note_topics": int(figures["rows"])}

    def analysts_tables() -> dict[str, int]:
        rows: dict[str, int] = {}
        for name, df in build(tables, ml, month=month).items():
            _write(tables, name, df, months)
            rows[name] = (
                tables.read(f"gold.{name}").count()
                if months is None
                else tables.read(f"gold.{name}", partitions={"month": months}).count()
            )
            log.info("gold.%s: %d rows%s", name, rows[name], f" for {month}" if month else "")
        return rows

    # Three independent parts, two at a time (as the models train): each is a chain of small
    # Spark jobs with driver work between them (a fit, MLflow, Delta commits) that leaves a
    # core idle. customer_360 reads the RFM and CLV tables, so it comes after all three.
    parts = [analysts_tables, note_topics, lambda: _write_clv(tables, settings, ml, month=month)]
    written: dict[str, int] = {}
    for rows in in_parallel(lambda part: part(), parts, threads=ml.models_at_once):
        written.update(rows)
    written[CUSTOMER_360] = write_customer_360(tables, month=month)
    check_tables(tables, settings.config, written_tables())
    return written


def written_tables() -> tuple[str, ...]:
    """Every table this stage writes (each has a suite in :mod:`cardlake.quality.layers`)."""
    return (
        *(f"gold.{name}" for name in TABLES),
        f"gold.{CUSTOMER_360}",
        clv.OUTPUT_TABLE,
        NOTE_TOPICS_TABLE,
    )


CLV_SCHEMA = "customer_key string, month string, clv_usd double"


def _write_clv(
    tables: Tables, settings: Settings, ml: MlSettings, *, month: str | None
) -> dict[str, int]:
    # A current view like customer_360: a backfill of a month older than the table's leaves
    # it alone.
    from cardlake.gold.config import GoldConfig
    from cardlake.ml import tracking

    if not tables.exists(clv.FACT_TABLE):
        return {}
    if month is not None and tables.exists(clv.OUTPUT_TABLE):
        latest = tables.read(clv.OUTPUT_TABLE).agg(F.max("month")).first()
        if latest is not None and latest[0] is not None and latest[0] > month:
            log.info(
                "%s is as of %s; a run of %s leaves it alone", clv.OUTPUT_TABLE, latest[0], month
            )
            return {}
    gold = settings.of(GoldConfig).features
    tracker = tracking.Tracker.configure(settings.config.paths.lake_root, ml.tracking)
    figures = clv.run_clv(
        tables,
        month=month,
        settings=ml.clv,
        seed=ml.seed,
        margin_rate=gold.clv_margin_rate,
        monthly_discount=gold.clv_monthly_discount,
        tracker=tracker,
    )
    return {"customer_clv": int(figures["rows"])} if "rows" in figures else {}


CUSTOMER_360 = "customer_360"


def write_customer_360(tables: Tables, *, month: str | None) -> int:
    """Rebuilds ``gold.customer_360`` as of the latest month (``month`` None), or upserts the
    customers on the books in ``month`` and removes those whose latest month is older: they
    closed (a customer's row says ``status`` closed in the month it closes; afterwards its
    history is in ``gold.dim_customer`` and the monthly tables). A month older than the
    table's is a backfill, and a month without features one gold has not built: either way the
    table, a current view, is left alone."""
    from cardlake.silver.schemas import SCHEMAS as SILVER

    name = f"gold.{CUSTOMER_360}"
    features = _read(tables, "gold.customer_monthly_features", None)
    if month is None:
        found = features.agg(F.max("month")).first()
        month = found[0] if found is not None else None
        if month is None:
            log.info("no features yet; %s not built", name)
            return 0
        incremental = False
    else:
        incremental = tables.exists(name)
        if incremental:
            latest = tables.read(name).agg(F.max("as_of_month")).first()
            if latest is not None and latest[0] is not None and latest[0] > month:
                log.info("%s is as of %s; a run of %s leaves it alone", name, latest[0], month)
                return tables.read(name).count()
            if features.where(F.col("month") == F.lit(month)).isEmpty():
                # Not "everyone closed": removing every row would empty the analysts' view.
                log.warning(
                    "no customer on the books in %s (gold not run for it?); %s left alone",
                    month,
                    name,
                )
                return tables.read(name).count()
    row = customer360.customer_360(
        features.where(F.col("month") == F.lit(month)),
        customers_df=_read(tables, "silver.customers", None, SILVER["customers"]),
        segments_df=_read(tables, "gold.customer_segments", [month], SEGMENTS_SCHEMA),
        rfm_df=_read(tables, "gold.customer_rfm", [month]),
        engagement_df=_read(
            tables,
            "gold.engagement_scores",
            None,
            "customer_key string, month string, score double",
        ),
        risk_df=_read(
            tables,
            "gold.customer_risk",
            None,
            "customer_key string, month string, risk_score double, tier string, "
            "reasons array<string>",
        ),
        alerts_df=_read(
            tables, "gold.fraud_alerts", [month], "customer_key string, ts timestamp, month string"
        ),
        interactions_df=_read(tables, "silver.interactions", None, SILVER["interactions"]),
        clv_df=_read(tables, clv.OUTPUT_TABLE, None, CLV_SCHEMA),
    ).localCheckpoint()
    if incremental:
        tables.merge(name, row, keys=["customer_key"])
        closed = f"as_of_month < '{month}'"
        removed = tables.read(name).where(closed).count()
        if removed:
            tables.delete(name, closed)
        log.info("%s: %d customer(s) no longer on the books in %s removed", name, removed, month)
    else:
        tables.overwrite(name, row)
    count = tables.read(name).count()
    log.info("%s: %d current customers as of %s", name, count, month)
    return count
