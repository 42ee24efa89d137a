"""Customer resolution for silver: full or incremental, and the state that makes it incremental.

A **full** resolution standardises every person record and resolves them all
(:func:`cardlake.er.resolve_entities`): it trains the Fellegi-Sunter model, picks the link
threshold, clusters. It saves what it learnt in two silver tables:

- ``silver.er_model``: the trained Splink model (JSON) and the link threshold;
- ``silver.er_records``: the ``uid`` of every person record it resolved.

An **incremental** resolution (the default once that state exists) looks only at records whose
``uid`` is not in ``silver.er_records`` (a new source record, or a new delivery of a known one
with changed attributes). They are matched against every record with the saved model and
threshold (:func:`cardlake.er.match_new_records`); pairs of two known records are not scored
again. The links are clustered together with the known entities they touch (each known record
is joined to its ``customer_key``), so a new record that bridges two people is a merge, which
:mod:`cardlake.silver.keys` records rather than hides. With no new record at all, nothing is
matched and the crosswalk is kept as it is.

Only an entity with a record of a customer source
(:data:`cardlake.silver.customers.CUSTOMER_SOURCES`) is keyed and enters the crosswalk. An entity
made of activity records alone (product usage, marketing) is **held back**
(:attr:`CustomerResolution.held_back`): it gets no key and so no golden record, its records are in
``silver.er_records`` like any resolved record, and every later resolution looks at it again: a
held-back record is keyed by the run whose links join it to a customer's records (a new delivery
with an e-mail, a new CRM record), by the key rules of :mod:`cardlake.silver.keys`.

A full resolution runs instead when there is no state, when asked (``--full-resolve``), or
when the new records outnumber :data:`MAX_INCREMENTAL_SHARE` of the known ones (the saved model
has then seen too little of the data to be trusted on it).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.silver import customers, keys, steps
from cardlake.tables import Idempotency, Tables

log = logging.getLogger("cardlake.silver")

MAX_INCREMENTAL_SHARE = 0.5
"""Above this many new records per known record, resolve everything again."""

FULL, INCREMENTAL, UNCHANGED = "full", "incremental", "unchanged"
ER_MODEL_TABLE, ER_RECORDS_TABLE = "silver.er_model", "silver.er_records"
KEY_EVENTS_TABLE = "silver.key_events"
KEY_EVENTS_APP = "cardlake-silver-key-events"
IDENTITY_COLUMNS = (
    "given_name",
    "surname",
    "dob",
    "email_canonical",
    "phone",
    "street_number",
    "street",
    "city",
    "postcode",
    "state",
    "country",
    "national_id",
)
"""The standardised columns that make a person record what it is (with its xref keys)."""
_KEY_NODE = "key|"


@dataclass(frozen=True)
class ResolutionState:
    """What an earlier resolution left: its crosswalk, model, threshold and records."""

    crosswalk: DataFrame
    """Every row of ``silver.crosswalk`` (history included)."""
    model: dict[str, object] | None
    threshold: float | None
    known_uids: DataFrame | None
    """``(uid)`` of the records already resolved; None when the state predates it."""

    @property
    def incremental_ready(self) -> bool:
        return (
            self.model is not None and self.threshold is not None and (self.known_uids is not None)
        )


@dataclass
class CustomerResolution:
    """The outcome of :func:`resolve_customers`."""

    crosswalk: DataFrame
    events: DataFrame
    person_keys: DataFrame
    """Every person record with its ``customer_key`` (standardised columns kept)."""
    held_back: DataFrame
    """``(uid, source_dataset, source_record_id)``: the person records of entities with no
    customer source; they are in neither the crosswalk nor ``person_keys``."""
    mode: str
    records: int
    new_records: int
    seconds: float
    threshold: float | None
    model: dict[str, object] | None


def person_records(bronze: dict[str, DataFrame]) -> DataFrame:
    """Every person-bearing bronze record, standardised (:func:`cardlake.er.to_person_records`)."""
    from cardlake.er import to_person_records

    records = None
    for source, (frame, mapping) in customers.person_inputs(bronze).items():
        standardised = to_person_records(frame, mapping=mapping, dataset=source)
        records = standardised if records is None else records.unionByName(standardised)
    if records is None:
        raise ValueError("no person-bearing bronze table (crm_customers, financial_records, ...)")
    # A record is a source key with one identity: the standardised values the matcher compares.
    # A delivery that repeats it (next month's marketing feed with the e-mail in another case, a
    # plan change in CRM) is the record already resolved, so incremental resolution sees only
    # real news; rows with the same identity are equal in every compared column.
    identity = F.substring(
        F.sha2(
            F.concat_ws(
                "\u0001",
                *[F.coalesce(F.col(c).cast("string"), F.lit("\u0000")) for c in IDENTITY_COLUMNS],
                F.array_join(F.array_sort("xref_keys"), " "),
            ),
            256,
        ),
        1,
        16,
    )
    record_id = F.concat_ws("~", F.col("source_record_id"), identity)
    return (
        records.withColumn("source_record_id", F.col("record_id"))
        .withColumn("record_id", record_id)
        .withColumn("uid", F.concat_ws("|", "source_dataset", "record_id"))
        .dropDuplicates(["uid"])
        .localCheckpoint(eager=True)
    )


def load_state(tables: Tables) -> ResolutionState | None:
    """The state an earlier run left in silver, or None before the first run."""
    if not tables.exists("silver.crosswalk"):
        return None
    crosswalk = tables.read("silver.crosswalk").localCheckpoint(eager=True)
    model = threshold = known = None
    if tables.exists(ER_MODEL_TABLE):
        row = tables.read(ER_MODEL_TABLE).first()
        if row is not None:
            model, threshold = json.loads(row["model_json"]), float(row["threshold"])
    if tables.exists(ER_RECORDS_TABLE):
        known = tables.read(ER_RECORDS_TABLE).select("uid").localCheckpoint(eager=True)
    return ResolutionState(crosswalk=crosswalk, model=model, threshold=threshold, known_uids=known)


def commit_resolution(
    spark: SparkSession,
    tables: Tables,
    result: CustomerResolution,
    *,
    month: str,
    write_crosswalk: Callable[[DataFrame], None],
) -> None:
    """Records a resolution so that a crash at any step loses no key event and doubles none.

    The key events go first, as an append made idempotent by the version of ``silver.er_records``
    the resolution started from; then the crosswalk; then the state (:func:`save_state`). A run
    that dies part-way starts again from the same state version, so its append of events is
    skipped when the first attempt made it, and made when it did not. Written last, the events
    were lost whenever a run died after the state: the next run found the records known and
    nothing to tell.
    """
    started_from = tables.version(ER_RECORDS_TABLE) if tables.exists(ER_RECORDS_TABLE) else -1
    steps.step("before_key_events")
    if result.events.limit(1).count():
        tables.append(
            KEY_EVENTS_TABLE,
            result.events,
            idempotency=Idempotency(KEY_EVENTS_APP, started_from + 1),
        )
    if result.mode != UNCHANGED:  # an unchanged crosswalk needs no new table version
        write_crosswalk(result.crosswalk)
    save_state(spark, tables, result, month=month)


def save_state(
    spark: SparkSession, tables: Tables, result: CustomerResolution, *, month: str
) -> None:
    """Writes the model (after a full resolution) and the resolved records' uids."""
    steps.step("before_er_model")
    if result.mode == FULL and result.model is not None and result.threshold is not None:
        row = spark.createDataFrame(
            [(month, float(result.threshold), int(result.records), json.dumps(result.model))],
            "trained_month string, threshold double, records long, model_json string",
        )
        tables.overwrite(ER_MODEL_TABLE, row)
    steps.step("before_er_records")
    if result.mode != UNCHANGED:
        # Held-back records were resolved too (as entities of their own kind): a later run
        # matches only new records against them, as against any other.
        resolved = result.person_keys.select("uid", "source_dataset", "source_record_id")
        tables.overwrite(
            ER_RECORDS_TABLE,
            resolved.unionByName(result.held_back).select(
                "uid", F.col("source_dataset").alias("source"), "source_record_id"
            ),
        )


def resolve_customers(
    spark: SparkSession,
    bronze: dict[str, DataFrame],
    state: ResolutionState | None,
    *,
    month: str,
    full: bool = False,
) -> CustomerResolution:
    """Resolves the person records behind ``bronze`` into keyed customers.

    Args:
        spark: the session (with Splink's settings, see :func:`cardlake.er.splink_spark_conf`).
        bronze: the bronze tables by name.
        state: what the last run left (:func:`load_state`), or None.
        month: the run's month; crosswalk validity starts here.
        full: resolve every record again even when an incremental pass would do.
    """
    started = time.perf_counter()
    records = person_records(bronze)
    n_records = records.count()
    previous = state.crosswalk if state is not None else None
    previous_current = previous.filter("is_current") if previous is not None else None

    mode, n_new = FULL, n_records
    if state is not None and state.incremental_ready and not full:
        assert state.known_uids is not None
        records = (
            records.join(
                state.known_uids.select("uid", F.lit(False).alias("_known")), on="uid", how="left"
            )
            .withColumn("is_new", F.col("_known").isNull())
            .drop("_known")
            .localCheckpoint(True)
        )
        n_new = records.filter("is_new").count()
        if n_new == 0:
            mode = UNCHANGED
        elif n_new <= MAX_INCREMENTAL_SHARE * (n_records - n_new):
            mode = INCREMENTAL
        else:
            log.info("%d new of %d person records: resolving all again", n_new, n_records)
            records, n_new = records.drop("is_new"), n_records

    threshold = state.threshold if state is not None else None
    model = state.model if state is not None else None
    if mode == UNCHANGED:
        assert previous is not None and previous_current is not None
        crosswalk, events = previous, keys.empty_events(spark)
    else:
        if mode == FULL:
            members, methods, threshold, model = _full(spark, records)
        else:
            assert previous_current is not None and model is not None and threshold is not None
            members, methods = _incremental(
                spark, records, previous_current, model=model, threshold=threshold
            )
        keyed, events = keys.assign_keys(with_customer_source(members), previous_current)
        crosswalk = keys.updated_crosswalk(
            keyed.select("source", "source_record_id", "customer_key"),
            previous,
            month=month,
            methods_df=methods,
        )
    crosswalk = crosswalk.localCheckpoint(eager=True)
    current = crosswalk.filter("is_current").select(
        F.col("source").alias("source_dataset"), "source_record_id", "customer_key"
    )
    on = ["source_dataset", "source_record_id"]
    person_keys = records.drop("is_new").join(current, on=on, how="inner")
    # Whatever the mode, a record not in the current crosswalk is one of an entity without a
    # customer source (an unchanged resolution keeps the last run's crosswalk, so its own).
    held_back = (
        records.select("uid", *on).join(current, on=on, how="left_anti").localCheckpoint(eager=True)
    )
    seconds = time.perf_counter() - started
    log.info("entity resolution (%s): %d records, %d new, %.1fs", mode, n_records, n_new, seconds)
    return CustomerResolution(
        crosswalk=crosswalk,
        events=events.withColumn("month", F.lit(month)),
        person_keys=person_keys,
        held_back=held_back,
        mode=mode,
        records=n_records,
        new_records=n_new,
        seconds=seconds,
        threshold=threshold,
        model=model,
    )


def with_customer_source(members_df: DataFrame) -> DataFrame:
    """The members of clusters holding a record of a customer source; the others (activity
    records alone) are held back: no key, no crosswalk row, no golden record."""
    backed = (
        members_df.groupBy("cluster")
        .agg(F.bool_or(F.col("source").isin(*customers.CUSTOMER_SOURCES)).alias("_backed"))
        .filter("_backed")
        .select("cluster")
    )
    return members_df.join(backed, on="cluster", how="left_semi")


def _members_and_methods(per_record: DataFrame) -> tuple[DataFrame, DataFrame]:
    """``(cluster, source, source_record_id)`` and the crosswalk's match method per source record.

    All person records of one source key share it as a cross-reference, so share a cluster; the
    smallest cluster id is a guard, not a choice. The method comes from the best link score.
    """
    grouped = per_record.groupBy("source", "source_record_id").agg(
        F.min("cluster").alias("cluster"),
        F.max("match_probability").alias("match_probability"),
    )
    methods = grouped.select(
        "source",
        "source_record_id",
        "match_probability",
        F.when(F.col("match_probability").isNull(), "singleton")
        .when(F.col("match_probability") >= 1.0, "deterministic")
        .otherwise("probabilistic")
        .alias("match_method"),
    )
    return grouped.select("cluster", "source", "source_record_id"), methods


def _full(
    spark: SparkSession, records: DataFrame
) -> tuple[DataFrame, DataFrame, float, dict[str, object]]:
    from cardlake.er import resolve_entities

    resolution = resolve_entities(spark, [records.drop("source_record_id")])
    per_record = resolution.entities_df.select(
        F.col("source_dataset").alias("source"),
        customers.source_record_id(F.col("record_id")).alias("source_record_id"),
        F.col("entity_id").alias("cluster"),
        "match_probability",
    )
    members, methods = _members_and_methods(per_record)
    return members, methods, resolution.threshold_match_probability, resolution.model


def _incremental(
    spark: SparkSession,
    records: DataFrame,
    previous_current: DataFrame,
    *,
    model: dict[str, object],
    threshold: float,
) -> tuple[DataFrame, DataFrame]:
    from cardlake.er import connected_components, match_new_records
    from cardlake.er.resolve import without_bridges

    links = match_new_records(
        spark,
        records.drop("source_record_id"),
        model=dict(model),
        threshold_match_probability=threshold,
    )
    old_keys = (
        records.filter(~F.col("is_new"))
        .join(
            previous_current.select(
                F.col("source").alias("source_dataset"), "source_record_id", "customer_key"
            ),
            on=["source_dataset", "source_record_id"],
            how="inner",
        )
        .select("uid", "customer_key")
    )
    best = (
        links.select(F.col("uid_l").alias("uid"), "match_probability")
        .unionByName(links.select(F.col("uid_r").alias("uid"), "match_probability"))
        .groupBy("uid")
        .agg(F.max("match_probability").alias("match_probability"))
    )
    # Known records touched by a link bring their whole entity into the clustering (through a
    # node standing for its key), so a bridge between two people shows as one cluster.
    touched = old_keys.join(best, on="uid", how="left_semi").select("customer_key").distinct()
    key_edges = old_keys.join(touched, on="customer_key", how="inner").select(
        F.col("uid").alias("uid_l"),
        F.concat(F.lit(_KEY_NODE), "customer_key").alias("uid_r"),
        F.lit(1.0).alias("match_probability"),
    )  # a known person's records stay together
    edges = links.select("uid_l", "uid_r", "match_probability").unionByName(key_edges)
    components = without_bridges(connected_components(edges), edges, records).localCheckpoint(
        eager=True
    )
    per_record = (
        records.select("uid", F.col("source_dataset").alias("source"), "source_record_id")
        .join(old_keys, on="uid", how="left")
        .join(components, on=F.col("uid") == components["node"], how="left")
        .join(best, on="uid", how="left")
        .select(
            "source",
            "source_record_id",
            "match_probability",
            F.coalesce("component", F.concat(F.lit(_KEY_NODE), "customer_key"), "uid").alias(
                "cluster"
            ),
        )
    )
    # Known records untouched keep their old method and probability (their rows stay as they
    # are); only records that open a new crosswalk row use these.
    return _members_and_methods(per_record)
