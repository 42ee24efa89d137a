"""Gold's edge: read silver through ``Tables``, chain the transforms, check keys, write gold.

Month ``M`` reads only ``M``'s partitions of silver (and the ``lookback_months`` of
transactions the rolling and RFM features need), replaces only ``M``'s partitions of the
partitioned gold tables, and applies to ``dim_customer`` only the type-2 changes of customers
touched in ``M``. A full build (no month) computes every month in one pass and overwrites.
Both give the same tables (tests/gold/test_build.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cardlake.config import Settings
from cardlake.errors import JobFailed
from cardlake.gold import dims, facts, features, kpis
from cardlake.gold.config import GoldConfig
from cardlake.months import window
from cardlake.quality.layers import check_tables
from cardlake.silver.schemas import SCHEMAS as SILVER_SCHEMAS
from cardlake.tables import Idempotency, Tables, watermarks
from cardlake.threads import in_parallel

log = logging.getLogger("cardlake.gold")

MONTHLY_TABLES = (
    "fact_transactions",
    "fact_interactions",
    "fact_product_usage",
    "customer_monthly_features",
    "kpi_monthly",
    "kpi_state_monthly",
    "kpi_country_monthly",
    "kpi_plan_monthly",
)
DIMENSIONS = (
    "dim_customer",
    "dim_account",
    "dim_card",
    "dim_merchant",
    "dim_date",
    "dim_location",
    "dim_product",
    "dim_channel",
)
TABLES = tuple(f"gold.{name}" for name in (*DIMENSIONS, *MONTHLY_TABLES))
"""Every table the gold stage writes (each has a suite in :mod:`cardlake.quality.layers`)."""


class ForeignKeyError(JobFailed):
    """A fact row points at no dimension row."""


def read_silver(tables: Tables, name: str, months: Sequence[str] | None = None) -> DataFrame:
    """``silver.<name>`` (pruned to ``months`` where given); empty with its contract if absent."""
    schema = SILVER_SCHEMAS[name]
    if not tables.exists(f"silver.{name}"):
        log.warning("silver.%s does not exist yet; gold treats it as empty", name)
        return tables.spark.createDataFrame([], schema)
    if months is None:
        return tables.read(f"silver.{name}")
    return tables.read(f"silver.{name}", partitions={"month": list(months)})


def silver_months(tables: Tables) -> list[str]:
    """Months present in ``silver.transactions`` (a handful of rows to the driver)."""
    if not tables.exists("silver.transactions"):
        return []
    rows = read_silver(tables, "transactions").groupBy("month").count().collect()
    return sorted(r["month"] for r in rows if r["month"] is not None)


def _check_keys(
    name: str, fact_df: DataFrame, references: dict[str, tuple[DataFrame, str]]
) -> None:
    bad = {
        k: v for k, v in facts.foreign_key_violations(fact_df, references=references).items() if v
    }
    if bad:
        raise ForeignKeyError(f"gold.{name}: rows whose keys resolve to no dimension row: {bad}")


def _write_reference_dims(
    tables: Tables, gcfg: GoldConfig, *, merchants: DataFrame, full: bool
) -> None:
    # Type 1: the current reference data, whole. A month's run rewrites a dimension only when
    # its silver table has a new version (or, for the calendar and channels, when it is absent;
    # a full build always rewrites them, so a config change takes effect there).
    spark = tables.spark
    from_silver = {
        "dim_account": ("accounts", lambda: dims.dim_account(read_silver(tables, "accounts"))),
        "dim_card": ("cards", lambda: dims.dim_card(read_silver(tables, "cards"))),
        "dim_merchant": (
            "merchants",
            lambda: dims.dim_merchant(merchants, discretionary_mccs=gcfg.discretionary_mccs),
        ),
    }
    for name, (source, build) in from_silver.items():
        idempotency = None
        if not full and tables.exists(f"silver.{source}"):
            version = tables.version(f"silver.{source}") + 1
            idempotency = Idempotency(app_id=f"gold/{name}", version=version)
        tables.overwrite(f"gold.{name}", build(), idempotency=idempotency)
    static = {
        "dim_date": lambda: dims.dim_date(spark, start=gcfg.calendar.start, end=gcfg.calendar.end),
        "dim_channel": lambda: dims.dim_channel(
            spark, fee_usd_by_channel=gcfg.revenue.fee_usd_by_channel
        ),
    }
    for name, build_static in static.items():
        if full or not tables.exists(f"gold.{name}"):
            tables.overwrite(f"gold.{name}", build_static())


def build_gold(
    tables: Tables,
    gcfg: GoldConfig,
    *,
    months: Sequence[str],
    full: bool,
    recompute: bool = False,
) -> None:
    """Builds gold for ``months``: all of them in one pass, just one new month, or again.

    Args:
        tables: the lake.
        gcfg: gold settings.
        months: the months to build; an incremental build takes exactly one.
        full: overwrite every gold table from the whole history of ``months``.
        recompute: rebuild the dimensions from the whole history, as ``full`` does, and
            replace only ``months``' partitions of the monthly tables, leaving the other
            months' files as they are (what a full build would write there is unchanged: see
            :func:`inputs` for which months a change reaches).
    """
    if not full and not recompute and len(months) != 1:
        raise ValueError("an incremental gold build processes exactly one month")
    months = sorted(months)
    whole_dims = full or recompute
    lookback = gcfg.features.lookback_months
    tx_months = sorted({m for month in months for m in window(month, lookback)})
    snapshots = read_silver(tables, "customer_snapshots", months)
    transactions = read_silver(tables, "transactions", tx_months)
    month_tx = transactions.where(F.col("month").isin(list(months)))
    interactions = read_silver(tables, "interactions", months)
    marketing = read_silver(tables, "marketing_monthly", months)
    usage = read_silver(tables, "product_usage", months)
    merchants = read_silver(tables, "merchants")
    # The dimensions of a recompute come from every month, so they are the full build's.
    history = {
        "snapshots": read_silver(tables, "customer_snapshots") if recompute else snapshots,
        "tx": read_silver(tables, "transactions") if recompute else month_tx,
        "usage": read_silver(tables, "product_usage") if recompute else usage,
        "marketing": read_silver(tables, "marketing_monthly") if recompute else marketing,
    }

    # -- dimensions
    _write_reference_dims(tables, gcfg, merchants=merchants, full=whole_dims)
    grown = {
        "dim_location": (
            dims.dim_location(
                history["snapshots"], transactions_df=history["tx"], merchants_df=merchants
            ),
            "location_sk",
        ),
        "dim_product": (
            dims.dim_product(
                history["snapshots"],
                product_usage_df=history["usage"],
                marketing_df=history["marketing"],
            ),
            "product_sk",
        ),
    }
    for name, (df, key) in grown.items():  # conformed: keys are only ever added
        if whole_dims or not tables.exists(f"gold.{name}"):
            tables.overwrite(f"gold.{name}", df)
            continue
        known = tables.read(f"gold.{name}").select(key)
        added = df.join(known, on=key, how="left_anti").localCheckpoint()
        if not added.isEmpty():
            # An insert-only merge, not a blind append: a key another run added since the read
            # above is skipped, and a run committing the same table meanwhile is a conflict
            # (ConcurrentModificationError, nothing written), so no surrogate key is duplicated.
            tables.merge(f"gold.{name}", added, keys=[key], when_matched="ignore")
    if whole_dims or not tables.exists("gold.dim_customer"):
        versions = (
            history["snapshots"] if whole_dims else snapshots.where(F.col("month") == months[0])
        )
        tables.overwrite("gold.dim_customer", dims.dim_customer_full(versions))
    else:
        upserts, stale = dims.dim_customer_month(
            snapshots, dim_customer_df=tables.read("gold.dim_customer"), month=months[0]
        )
        upserts = upserts.localCheckpoint()  # computed from the table it is about to change
        stale = stale.localCheckpoint()
        if not stale.isEmpty():
            tables.merge(
                "gold.dim_customer",
                stale,
                keys=["customer_sk"],
                when_matched="delete",
                when_not_matched="ignore",
            )
        if not upserts.isEmpty():
            tables.merge("gold.dim_customer", upserts, keys=["customer_sk"])
    dim = {name: tables.read(f"gold.{name}") for name in DIMENSIONS}

    # -- facts
    fact_tx = facts.fact_transactions(
        month_tx,
        dim_customer_df=dim["dim_customer"],
        dim_account_df=dim["dim_account"],
        dim_card_df=dim["dim_card"],
        dim_merchant_df=dim["dim_merchant"],
        dim_channel_df=dim["dim_channel"],
        dim_location_df=dim["dim_location"],
        revenue=gcfg.revenue,
    )
    fact_int = facts.fact_interactions(
        interactions, dim_customer_df=dim["dim_customer"], dim_channel_df=dim["dim_channel"]
    )
    fact_use = facts.fact_product_usage(
        usage, dim_customer_df=dim["dim_customer"], dim_product_df=dim["dim_product"]
    )
    customer_ref = (dim["dim_customer"], "customer_sk")
    date_ref = (dim["dim_date"], "date_sk")
    channel_ref = (dim["dim_channel"], "channel_sk")
    outputs: dict[str, DataFrame] = {}
    for name, df, refs in (
        (
            "fact_transactions",
            fact_tx,
            {
                "customer_sk": customer_ref,
                "account_sk": (dim["dim_account"], "account_sk"),
                "card_sk": (dim["dim_card"], "card_sk"),
                "merchant_sk": (dim["dim_merchant"], "merchant_sk"),
                "channel_sk": channel_ref,
                "merchant_location_sk": (dim["dim_location"], "location_sk"),
                "date_sk": date_ref,
            },
        ),
        (
            "fact_interactions",
            fact_int,
            {
                "customer_sk": customer_ref,
                "channel_sk": channel_ref,
                "date_sk": date_ref,
            },
        ),
        (
            "fact_product_usage",
            fact_use,
            {
                "customer_sk": customer_ref,
                "product_sk": (dim["dim_product"], "product_sk"),
                "date_sk": date_ref,
            },
        ),
    ):
        checked = df.localCheckpoint()
        _check_keys(name, checked, refs)
        outputs[name] = checked

    # -- features and KPIs
    feats = features.customer_monthly_features(
        snapshots,
        transactions_df=transactions,
        interactions_df=interactions,
        marketing_df=marketing,
        months=months,
        discretionary_mccs=gcfg.discretionary_mccs,
        settings=gcfg.features,
    ).localCheckpoint()
    outputs["customer_monthly_features"] = feats
    tx_facts = outputs["fact_transactions"]
    # KPIs of model outputs (fraud alerts) are gold.kpi_model_monthly, after the models
    outputs["kpi_monthly"] = kpis.kpi_monthly(tx_facts, features_df=feats)
    outputs["kpi_state_monthly"] = kpis.kpi_state_monthly(tx_facts)
    outputs["kpi_country_monthly"] = kpis.kpi_country_monthly(feats)
    outputs["kpi_plan_monthly"] = kpis.kpi_plan_monthly(feats)

    def write(name: str) -> None:
        df = outputs[name]
        if full:
            tables.overwrite(f"gold.{name}", df, partition_by=["month"])
        else:
            tables.replace_partitions(
                f"gold.{name}", df, partitions={"month": list(months)}, partition_by=["month"]
            )

    # Two tables at a time: each write is a short job or two and a Delta commit (driver work
    # that leaves a core idle); the tables are independent, their inputs computed already.
    in_parallel(write, MONTHLY_TABLES)
    kind = "full" if full else "recomputed" if recompute else "incremental"
    log.info("gold built for %s (%s)", ", ".join(months), kind)


def run(tables: Tables, settings: Settings, *, month: str | None, full: bool = False) -> str:
    """Builds gold from silver: one month, or the months whose silver inputs changed.

    Args:
        tables: the lake.
        settings: loaded at the edge; reads ``GoldConfig``.
        month: ``YYYY-MM`` to rewrite only that month's partitions (and the type-2 changes of
            the customers it touches). None: every month found in ``silver.transactions``, as
            far as they need it: from the commit log of silver since the last build
            (:mod:`cardlake.tables.watermarks`), a month whose inputs did not change is not
            recomputed, nothing at all when none changed, everything on the first build or
            after a change of gold's code or settings or of a reference table.
        full: rebuild every month whatever changed.

    Returns:
        What was built, in a few words (the console shows it).

    Raises:
        ForeignKeyError: a fact row resolves to no dimension row; nothing of that table written.
        DataQualityError: a critical expectation of a gold table failed (results recorded).
    """
    gcfg = settings.of(GoldConfig)
    if month is not None:
        build_gold(tables, gcfg, months=[month], full=False)
        check_tables(tables, settings.config, TABLES)
        return f"month {month}"
    months = silver_months(tables)
    if not months:
        log.info("silver.transactions has no months yet; nothing to build")
        return "no months in silver yet"
    plan = refresh(tables, gcfg, months=months, full=full)
    if plan.mode != "skip":
        check_tables(tables, settings.config, TABLES)
    watermarks.record(tables, plan)  # only once the tables passed their checks
    return _summary(plan, len(months))


def refresh(
    tables: Tables, gcfg: GoldConfig, *, months: Sequence[str], full: bool = False
) -> watermarks.Plan:
    """Builds what the commit log of gold's inputs says changed among ``months``.

    Returns the plan it followed; the caller records it (:func:`watermarks.record`) once the
    tables are checked, so a failed build is planned again.
    """
    plan = watermarks.plan(
        tables, "gold", inputs(gcfg), recipe=recipe(gcfg), months=months, force=full
    )
    log.info("gold plan: %s (%s)", plan.mode, plan.reason)
    if plan.mode == "full":
        build_gold(tables, gcfg, months=months, full=True)
    elif plan.mode == "months":
        build_gold(tables, gcfg, months=plan.months, full=False, recompute=True)
    return plan


def inputs(gcfg: GoldConfig) -> tuple[watermarks.Input, ...]:
    """Gold's silver inputs and the months a change to each reaches.

    A month of transactions feeds the rolling features of the ``lookback_months`` that end
    with it; a month of snapshots can open a type-2 version of ``dim_customer`` that the facts
    of every later month point at; the other monthly inputs feed their own month. The
    reference tables feed dimensions every month's facts resolve their keys in: a change in
    their rows rebuilds everything.
    """
    lookback = gcfg.features.lookback_months
    return (
        watermarks.Input("silver.customer_snapshots", reach="onwards"),
        watermarks.Input("silver.transactions", reach="following", months=lookback),
        watermarks.Input("silver.interactions"),
        watermarks.Input("silver.marketing_monthly"),
        watermarks.Input("silver.product_usage"),
        *(
            watermarks.Input(f"silver.{name}", reach="whole")
            for name in ("merchants", "accounts", "cards")
        ),
    )


def recipe(gcfg: GoldConfig) -> str:
    """Gold's code, the months arithmetic and silver's contracts it reads, and its settings."""
    import cardlake.gold
    import cardlake.months
    import cardlake.silver.schemas

    return watermarks.recipe_digest(
        [cardlake.gold, cardlake.months, cardlake.silver.schemas], [gcfg]
    )


def _summary(plan: watermarks.Plan, total: int) -> str:
    if plan.mode == "skip":
        return f"nothing recomputed: {plan.reason}"
    if plan.mode == "full":
        return f"all {total} months ({plan.reason})"
    return (
        f"{len(plan.months)} of {total} months recomputed ({', '.join(plan.months)}); "
        f"the others unchanged"
    )
