"""The fraud stream: card events in, scored events and alerts out, exactly once.

One query reads the source (event files in the landing folder, or a Kafka topic); each of its
micro-batches holds two kinds of rows:

- every message that does not parse (with its reason and masked raw text), for
  ``_quarantine.card_events``;
- well-formed events, deduplicated by ``event_id`` within the watermark, enriched by
  stream-static joins with silver (card to customer, home country, FX rate), given per-customer
  velocity state (:mod:`cardlake.stream.velocity`), scored with the registry's ``@champion``
  fraud model over the batch feature definitions; every scored event to
  ``silver.card_events_scored``, each alert to ``gold.fraud_alerts_live`` and the alerts topic.

The rejected messages used to have a query of their own over the same source: its micro-batches
(a source read, a parse, a Spark job and two checkpoint commits each, with or without a malformed
message) ran beside the alerts query's on the same two cores.

Exactly once: checkpoints live in the lake (``_checkpoints/<name>/``) and every Delta write is
made once per micro-batch id (:class:`AlertSink`), so a batch replayed after a crash commits
nothing twice. The alerts topic is at-least-once: a replayed batch
publishes again, with the same ``event_id`` key, for consumers to deduplicate.

A new champion is picked up without a restart: the registry's alias is checked every
``model_refresh_seconds`` between micro-batches and the new version loaded before the next one;
each scored row records the model version that scored it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.config import Config, is_object_store, local_path
from cardlake.errors import JobFailed
from cardlake.spark import DRIVER_OPTIONS
from cardlake.stream import events as E
from cardlake.stream.velocity import (
    OUTPUT_SCHEMA,
    STATE_BUCKET,
    STATE_KEY,
    STATE_SCHEMA,
    state_bucket,
    velocity_state_fn,
)
from cardlake.tables import Idempotency, Tables
from cardlake.threads import in_parallel

if TYPE_CHECKING:
    from cardlake.ml.settings import FraudSettings

log = logging.getLogger("cardlake.stream")

# Spark's Kafka source for Spark 4.1. Maven Central carries the connector up to 4.1.3, but its
# spark-token-provider-kafka dependency only up to 4.1.1, so 4.1.1 is the newest that resolves;
# the 4.1 line keeps the source API stable. 4.1.1's source metrics throw a NullPointerException
# at the end of the first batch after a restart from a checkpoint (SPARK-57438, fixed in 4.1.3):
# see :func:`await_idle`, which restarts a query that failed that way.
KAFKA_PACKAGE = "org.apache.spark:spark-sql-kafka-0-10_2.13:4.1.1"
# How often one query may be restarted in place after SPARK-57438 (once per recovery is enough).
MAX_METRICS_RESTARTS = 3
SCORED_TABLE = "silver.card_events_scored"
ALERTS_TABLE = "gold.fraud_alerts_live"
QUARANTINE_TABLE = "_quarantine.card_events"
TRANSACTIONS = "silver.transactions"
CUSTOMERS = "silver.customers"
FX = "silver.fx_rates"
SOURCE_VAR = "STREAM_SOURCE"
BOOTSTRAP_VAR = "KAFKA_BOOTSTRAP"
# A broker restart or a loaded machine can hold acknowledgements for a minute or more.
ALERT_FLUSH_SECONDS = 180.0
UNKNOWN_PREFIX = "instrument:"  # state key of a card silver knows no customer for
# The quarantine appends' idempotency id (after the job's name). Not the former quarantine
# query's ("quarantine"): its batch ids counted its own micro-batches, not the alerts query's.
REJECTED_APP = "rejected"
_STATE_OUTPUT = [f.name for f in OUTPUT_SCHEMA.fields]
# Buckets of customers in the velocity state: a micro-batch calls the state function once per
# bucket it touches (a call costs a few milliseconds whatever it holds) and rewrites those
# buckets' state. 600-event batches touch ~350 customers, a third of the mini lake's.
STATE_BUCKETS = 16
# The sink's tables whose rows carry the micro-batch id (``batch_id``), by which it finds a
# replayed batch's earlier append (:class:`AlertSink`).
_BATCH_KEYED = (SCORED_TABLE, ALERTS_TABLE)
# A micro-batch's customers and transaction ids go into its plan as constant sets up to this
# many (a JSON text of ~25 bytes an id, each row's lookup linear in the set): above it, joins.
# 600-event batches hold ~350 customers and ~3,000 transaction ids (their retained history).
MAX_LITERAL_IDS = 10_000
# The stream's session. The quarantine's appends are Delta's idempotent ones (txnAppId and
# txnVersion; the other tables' are plain, see AlertSink); to check the application's last
# version Delta reconstructs the table's state, a three-stage Spark job per append, unless each
# commit keeps its applications' versions in its checksum file (.crc), as this asks. 2,000-row
# appends, two cores at load 12: 1.5 to 2.5 s and two jobs an append before, 0.5 to 0.8 s and
# one job after; replays still commit nothing.
# Delta also writes a checkpoint of a table's whole log every 10 commits by default: four more
# Spark jobs in every tenth micro-batch, on both tables at once, which that batch's events wait
# for. Tables this session creates checkpoint every 100 commits instead (a reader replays at
# most 100 small commit files; writers read the checksum). With delta-spark 4.4 the version check
# still costs the job on every append: the snapshot's `transactions` come from the log's whole
# state even where the checksum holds them (2026-12-05, 5 appends of a 2,000-row table).
# Expressions are evaluated as they are, not compiled: every micro-batch plans anew with literals
# of its own (the watermark, the batch id, the scoring time, the batch's sets), so each compiled
# its projections and predicates to new classes (Janino) that the JVM then compiled again (JIT),
# on a few hundred rows. 600-event batches from the file source, two cores at load 9, CPU of
# the driver's JVM over 4 batches: 50 s to 40 s (JIT compiler threads 22 to 16 s, tasks 13 to
# 6 s), all processes 62 to 53 s; the same rows out.
# No micro-batch without input: by default a stateful query whose watermark moved runs one more
# batch as soon as its source has nothing new (the state's timeouts, the deduplication's
# cleanup), a whole batch's state job and checkpoint commits; an event arriving meanwhile waits
# for it. It emits nothing here (the velocity state's timeouts forget, they output no row), so
# that forgetting now happens in the next batch with input. 600-event batches from the file
# source, each followed by a quiet spell, two alternating pairs at load 6-11: 12.0 and 11.0
# CPU-s a batch with the extra batch, 9.6 and 9.2 without. bench_stream --rates 0.5, two pairs
# at load 3-8: p50 21.5 -> 11.4 s and 7.0 -> 6.6 s, within the spread; at 0.5-500 events/s
# input is nearly always waiting when a batch ends, so the bench's latency hardly moves.
STREAM_SPARK_CONF = {
    "spark.databricks.delta.setTransactionsInCrc.writeOnCommit": "true",
    "spark.databricks.delta.properties.defaults.checkpointInterval": "100",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.streaming.noDataMicroBatches.enabled": "false",
}
# The driver JVM compiles hot code with its quick compiler only (C1, no C2): the stream's JVM
# spent more CPU in its JIT compiler threads than in its tasks, each micro-batch's plan being
# new code (above). An option of the JVM's start, so it applies where the stream builds its own
# session (jobs/stream.py), not to a session already running (the tests'). bench_stream, 100
# events/s for 30 s, two cores at load 12, the job's CPU after warm-up: 49 s without, 41 s with
# (given through JAVA_TOOL_OPTIONS; one run each). -XX:+UseParallelGC besides, side by side with
# this at load 10 to 15: 38 s against 40 s, inside the spread of repeated runs (38 to 46 s).
# C1 alone shrinks the JVM's default code cache from 240 MB to 48 MB, which a long stream with
# Kafka's and Delta's classes filled (2026-12-06, `make test`: "Out of space in CodeCache for
# adapters", the job died): the cache keeps the default size.
STREAM_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"


@dataclass(frozen=True)
class StreamSettings:
    """How the stream runs; defaults suit ``make stream`` on one machine.

    Attributes:
        source: ``files`` (JSON-lines files under ``events_dir``) or ``kafka``.
        events_dir: folder of event files; ``<landing_root>/events`` when empty.
        bootstrap, topic, alerts_topic: the broker and its topics (Kafka only; alerts are
            published whenever a bootstrap server is set).
        watermark: how late (in event time) an event may arrive and still be deduplicated and
            scored; replayed history spreads a day over seconds, so the default is generous.
        trigger_seconds: micro-batch interval; 0 starts the next batch as soon as one ends.
        retain_days: event time a customer's history stays in the state store (the features'
            longest window is 30 days).
        state_buckets: how many buckets of customers the state store keeps the velocity state
            in (:func:`cardlake.stream.velocity.velocity_state_fn`); fixed for a checkpoint's
            life (a stream started with another count fails on its first batch).
        model_refresh_seconds: how often the registry's champion alias is checked.
        max_per_trigger: cap on messages (Kafka) or files per micro-batch; 0 for none.
        max_literal_ids: the most customers (or transaction ids) of a micro-batch that are
            written into its plan as constant sets; a bigger batch (after an outage, with no
            cap) looks them up with joins against the cached batch instead.
        name: the checkpoint folder and the idempotency application id.
        metrics_path: where each micro-batch appends its commit latencies (bench); "" for none.
    """

    source: Literal["files", "kafka"] = "files"
    events_dir: str = ""
    bootstrap: str = ""
    topic: str = "card-events"
    alerts_topic: str = "fraud-alerts"
    watermark: str = "2 days"
    trigger_seconds: float = 0.0
    retain_days: int = 31
    state_buckets: int = STATE_BUCKETS
    model_refresh_seconds: float = 10.0
    max_per_trigger: int = 0
    max_literal_ids: int = MAX_LITERAL_IDS
    starting_offsets: str = "earliest"
    name: str = "fraud_stream"
    metrics_path: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> StreamSettings:
        """Defaults, then ``STREAM_SOURCE`` and ``KAFKA_BOOTSTRAP``, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        source = env.get(SOURCE_VAR, "").strip().lower()
        if source:
            if source not in ("files", "kafka"):
                raise ValueError(f"{SOURCE_VAR}={source!r}: must be 'files' or 'kafka'")
            values["source"] = source
        if env.get(BOOTSTRAP_VAR):
            values["bootstrap"] = env[BOOTSTRAP_VAR]
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if settings.source == "kafka" and not settings.bootstrap:
            settings = dataclasses.replace(settings, bootstrap="127.0.0.1:9092")
        return settings


def session_config(cfg: Config, settings: StreamSettings) -> Config:
    """``cfg`` with the stream's session settings (:data:`STREAM_SPARK_CONF`, under any
    ``spark.conf`` of the config), the driver's :data:`STREAM_JAVA_OPTIONS` and Spark's Kafka
    source among the packages (Kafka only)."""
    conf = {**STREAM_SPARK_CONF, **cfg.spark.conf}
    # After the config's own driver options: profile_settings puts the profile's and the run
    # log's before them, and the JVM takes the last of an option.
    options = [str(cfg.spark.conf.get(DRIVER_OPTIONS, "")), STREAM_JAVA_OPTIONS]
    conf[DRIVER_OPTIONS] = " ".join(o for o in options if o)
    if settings.source == "kafka":
        wanted = [p for p in str(conf.get("spark.jars.packages", "")).split(",") if p]
        conf["spark.jars.packages"] = ",".join(dict.fromkeys([*wanted, KAFKA_PACKAGE]))
    return dataclasses.replace(cfg, spark=dataclasses.replace(cfg.spark, conf=conf))


# -- sources and transforms ----------------------------------------------------------------


def read_source(spark: SparkSession, settings: StreamSettings, events_dir: str) -> DataFrame:
    """The raw messages: ``value`` (text), ``broker_time`` and ``source`` (where it came from)."""
    if settings.source == "kafka":
        reader = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", settings.bootstrap)
            .option("subscribe", settings.topic)
            .option("startingOffsets", settings.starting_offsets)
            .option("failOnDataLoss", "true")
        )
        if settings.max_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", str(settings.max_per_trigger))
        df = reader.load()
        return df.select(
            F.col("value").cast("string").alias("value"),
            F.col("timestamp").alias("broker_time"),
            F.format_string("kafka:%s/%d/%d", "topic", "partition", "offset").alias("source"),
        )
    if not is_object_store(events_dir):  # Spark's file source needs the folder to exist
        Path(local_path(events_dir)).mkdir(parents=True, exist_ok=True)
    reader = spark.readStream.format("text")
    if settings.max_per_trigger:
        reader = reader.option("maxFilesPerTrigger", str(settings.max_per_trigger))
    df = reader.load(events_dir)
    return df.select(
        "value",
        F.col("_metadata.file_modification_time").alias("broker_time"),
        F.col("_metadata.file_name").alias("source"),
    )


@dataclass(frozen=True)
class Reference:
    """The static silver state the stream joins with (a snapshot taken at start)."""

    instruments: DataFrame  # instrument_id -> customer_key
    customers: DataFrame  # customer_key -> customer_country
    fx: DataFrame  # (txn_date, currency) -> units_per_usd
    history: DataFrame  # silver.transactions in the features' input columns
    reports: DataFrame  # (merchant_id, fraud_reported_at) of reported transactions


def load_reference(tables: Tables) -> Reference:
    from cardlake.stream.velocity import HISTORY_SCHEMA

    tx = tables.read(TRANSACTIONS)
    instruments = (
        tx.where(F.col("customer_key").isNotNull())
        .groupBy("instrument_id")
        .agg(F.min("customer_key").alias("customer_key"))
    )
    customers = tables.read(CUSTOMERS).select(
        "customer_key", F.col("country").alias("customer_country")
    )
    fx = tables.read(FX).select(F.col("date").alias("txn_date"), "currency", "units_per_usd")
    history = tx.select(*[f.name for f in HISTORY_SCHEMA.fields])
    reports = tx.where(F.col("fraud_reported_at").isNotNull()).select(
        "merchant_id", "fraud_reported_at"
    )
    return Reference(
        instruments=instruments.cache(),
        customers=customers.cache(),
        fx=fx.cache(),
        history=history.cache(),
        reports=reports.cache(),
    )


def with_enrichment(events_df: DataFrame, *, ref: Reference) -> DataFrame:
    """Events in silver.transactions' shape: customer, home country, USD amount, flags.

    The same standardisation silver applies to the daily files (upper-case codes, one channel
    vocabulary, night hours, cross-border against the home country).
    """
    from cardlake.silver.activity import NIGHT_HOURS, normalised_channel

    hour = F.hour("event_time")
    df = (
        events_df.withColumn("ts", F.col("event_time"))
        .withColumn("txn_date", F.to_date("event_time"))
        .withColumn("currency", F.upper("currency"))
        .join(F.broadcast(ref.instruments), on="instrument_id", how="left")
        .join(F.broadcast(ref.customers), on="customer_key", how="left")
        .join(F.broadcast(ref.fx), on=["txn_date", "currency"], how="left")
    )
    abroad = F.coalesce(F.upper("merchant_country"), F.upper("ip_country"))
    return df.select(
        F.coalesce("customer_key", F.concat(F.lit(UNKNOWN_PREFIX), "instrument_id")).alias(
            STATE_KEY
        ),
        "transaction_id",
        "customer_key",
        "instrument_id",
        "ts",
        "txn_date",
        (F.col("amount") / F.col("units_per_usd")).alias("amount_usd"),
        "merchant_id",
        "customer_country",
        normalised_channel(F.col("channel")).alias("channel"),
        F.lower(F.trim("direction")).alias("direction"),
        F.lower(F.trim("state")).alias("state"),
        "device_id",
        F.upper("ip_country").alias("ip_country"),
        ((hour >= NIGHT_HOURS[0]) & (hour < NIGHT_HOURS[1])).alias("is_night"),
        F.coalesce(abroad != F.col("customer_country"), F.lit(False)).alias("is_cross_border"),
        F.lit(None).cast("timestamp").alias("fraud_reported_at"),
        F.date_format("event_time", "yyyy-MM").alias("month"),
        "event_id",
        "sent_ms",
        "broker_time",
        "source",
        "instrument_type",
        "amount",
        "currency",
        "mcc",
        F.upper("merchant_country").alias("merchant_country"),
    )


def with_live_features(
    rows_df: DataFrame,
    *,
    ref: Reference,
    fraud: FraudSettings,
    small_amount_usd: float,
    customers: Sequence[str] | None,
    transaction_ids: Sequence[str] | None,
) -> DataFrame:
    """The batch features for the new rows, over silver's history plus the state's events.

    ``rows_df`` is the state function's output (new events and the customers' retained
    history). Silver's history counts for the (known) customers of its new events, and silver
    rows among its transactions are not counted twice. ``customers`` and ``transaction_ids``
    are those two sets when the sink collected them (:func:`batch_lookups`), else None: the
    lookups are then joins against ``rows_df``. ``small_amount_usd`` is the champion's own
    small-payment cut-off (:class:`Champion`).
    """
    from cardlake.ml.fraud_features import window_hours, with_transaction_features

    # Constant sets (a small batch's, collected by the sink's first job) save the joins' Spark
    # jobs; a null id is in neither, as the joins match no null.
    if customers is not None:
        of_batch = ref.history.where(
            F.array_contains(_literal_set(customers), F.col("customer_key"))
        )
    else:
        new_customers = rows_df.where(F.col("is_new")).select("customer_key")
        of_batch = ref.history.join(new_customers, on="customer_key", how="left_semi")
    if transaction_ids is not None:
        seen = F.array_contains(_literal_set(transaction_ids), F.col("transaction_id"))
        silver = of_batch.where(F.col("transaction_id").isNull() | ~seen)
    else:
        batch_ids = rows_df.select("transaction_id")
        silver = of_batch.join(batch_ids, on="transaction_id", how="left_anti")
    # A card no customer is known for is its own customer (its state key) for the features.
    both = (
        rows_df.withColumn("customer_key", F.col(STATE_KEY))
        .drop(STATE_KEY)
        .unionByName(silver.withColumn("is_new", F.lit(False)), allowMissingColumns=True)
    )
    feats = with_transaction_features(
        both, hours=window_hours(fraud), small_amount_usd=small_amount_usd, reports_df=ref.reports
    )
    unknown = F.col("customer_key").startswith(UNKNOWN_PREFIX)
    return feats.where("is_new").withColumn("customer_key", F.when(~unknown, F.col("customer_key")))


def batch_lookups(rows_df: DataFrame, *, max_ids: int) -> list[Column]:
    """Aggregates of a micro-batch for its sink: ``new`` and ``rejected`` counts, the new
    events' ``sent_ms`` (at most ``max_ids`` of them, for the latency log) and their earliest,
    and the sets :func:`with_live_features` takes, ``customers`` (of the new events) and
    ``transaction_ids`` (of every well-formed row), each null when it holds more than
    ``max_ids``: only bounded lists reach the driver and the plan (the aggregate's buffer holds
    a set in the JVM, beside the cached batch it comes from)."""
    is_new = F.col("is_new")
    well_formed = F.col("reason").isNull()
    customers = F.collect_set(F.when(is_new, F.col("customer_key")))
    transaction_ids = F.collect_set(F.when(well_formed, F.col("transaction_id")))
    return [
        F.count_if(is_new).alias("new"),
        F.count_if(~well_formed).alias("rejected"),
        F.slice(F.collect_list(F.when(is_new, F.col("sent_ms"))), 1, max_ids).alias("sent_ms"),
        F.min(F.when(is_new, F.col("sent_ms"))).alias("first_sent_ms"),
        F.when(F.size(customers) <= max_ids, customers).alias("customers"),
        F.when(F.size(transaction_ids) <= max_ids, transaction_ids).alias("transaction_ids"),
    ]


def _literal_set(values: Sequence[str]) -> Column:
    """``values`` as one constant array: one literal (a JSON text the optimiser folds) where
    ``isin`` makes a literal, and a call into the JVM, per value (1 s for 3,000 ids).

    ``array_contains`` compares a row with every value: in a profile of the stream (JFR, 1,000
    event batches on the mini lake) the comparisons were its hottest code, ~7% of the JVM's
    samples. An IN of the same literals becomes a hash set's lookup (handed over as one JSON
    text, Jackson's ``readValue`` to a list, ``Column.isInCollection``), but the analyser then
    walks thousands of literals: the batch's planning 1 s longer, its scoring 1 s shorter, the
    job's CPU unchanged (bench_stream at 100/s, load 15). Against a silver history far bigger than
    the mini lake's 4,000 rows the lookup would win; not taken without a bench that shows it.
    """
    return F.from_json(F.lit(json.dumps(list(values))), "array<string>")


# -- the model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChampionVersion:
    """One registered version of the fraud model and what its features need."""

    model: Any
    version: str
    threshold: float  # alerts at or above this score
    small_amount_usd: float  # the small-payment cut-off learnt with it


class Champion:
    """The registry's ``@champion`` fraud model, reloaded when the alias moves.

    Besides the model, a version carries what its features need: the alert threshold and the
    small-payment cut-off learnt with it (``fallback_small_usd`` for a version without one).
    """

    def __init__(
        self,
        *,
        name: str,
        tracking_uri: str,
        refresh_seconds: float,
        fallback_small_usd: float | None = None,
    ) -> None:
        self.name = name
        self.uri = tracking_uri
        self.refresh_seconds = refresh_seconds
        self.fallback_small_usd = fallback_small_usd
        self._held: ChampionVersion | None = None
        self._checked = 0.0

    def current(self) -> ChampionVersion:
        """The champion now; checks the alias at most every refresh period."""
        now = time.monotonic()
        if self._held is None or now - self._checked >= self.refresh_seconds:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            found = client.get_model_version_by_alias(self.name, "champion")
            held = self._held
            if held is None or str(found.version) != held.version:
                import mlflow.spark

                self._held = ChampionVersion(
                    model=mlflow.spark.load_model(f"models:/{self.name}/{found.version}"),
                    version=str(found.version),
                    threshold=float(found.tags["threshold"]),
                    small_amount_usd=_small_amount(found.tags, self.fallback_small_usd),
                )
                if held is not None:
                    log.warning(
                        "fraud stream: champion %s v%s replaces v%s",
                        self.name,
                        found.version,
                        held.version,
                    )
            self._checked = now
        assert self._held is not None
        return self._held


def _small_amount(tags: dict[str, str], fallback: float | None) -> float:
    from cardlake.ml.fraud import SMALL_AMOUNT_TAG

    if SMALL_AMOUNT_TAG in tags:
        return float(tags[SMALL_AMOUNT_TAG])
    if fallback is None:
        raise JobFailed(
            f"the fraud champion has no {SMALL_AMOUNT_TAG} tag and the settings pin "
            "none (ml.fraud.small_amount_usd); retrain it with `make ml`"
        )
    return fallback


# -- the sinks -----------------------------------------------------------------------------


def scored_rows(
    scored_df: DataFrame, *, threshold: float, version: str, batch_id: int, scored_at: datetime
) -> DataFrame:
    """silver.card_events_scored: every scored event with its score and key features."""
    return scored_df.select(
        "event_id",
        "transaction_id",
        F.col("instrument_id").alias("card_token"),
        "customer_key",
        F.col("ts").alias("event_time"),
        F.timestamp_millis(F.col("sent_ms")).alias("sent_time"),
        "broker_time",
        "amount",
        "currency",
        "amount_usd",
        "merchant_id",
        "channel",
        "state",
        F.col("score").cast("double").alias("score"),
        F.lit(threshold).alias("threshold"),
        (F.col("score") >= threshold).alias("is_alert"),
        F.lit(version).alias("model_version"),
        "tx_count_1h",
        "amount_sum_24h",
        "small_count_1h",
        "distinct_merchants_24h",
        "is_new_device",
        "ip_mismatch",
        "amount_ratio_30d",
        F.lit(scored_at).alias("scored_at"),
        F.lit(batch_id).cast("long").alias("batch_id"),
        "month",
    )


def alert_rows(
    scored_df: DataFrame,
    *,
    threshold: float,
    version: str,
    max_reasons: int,
    batch_id: int,
    alert_time: datetime,
) -> DataFrame:
    """gold.fraud_alerts_live: the events scoring at or above the champion's threshold."""
    from cardlake.ml.fraud_features import reasons_column

    return scored_df.where(F.col("score") >= threshold).select(
        "event_id",
        F.col("instrument_id").alias("card_token"),
        "customer_key",
        "transaction_id",
        F.col("score").cast("double").alias("score"),
        F.lit(threshold).alias("threshold"),
        reasons_column(max_reasons).alias("reason_codes"),
        F.lit(version).alias("model_version"),
        F.col("ts").alias("event_time"),
        F.col("broker_time"),
        F.timestamp_millis(F.col("sent_ms")).alias("sent_time"),
        F.lit(alert_time).alias("alert_time"),
        F.lit(batch_id).cast("long").alias("batch_id"),
        "month",
    )


class _Phases:
    """Wall seconds of a micro-batch's phases, for the log and the bench, and the Spark jobs
    each phase started with their stages (skipped ones included; counted when ``spark`` is
    given, from the driver's scheduler and status tracker)."""

    def __init__(self, spark: SparkSession | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.jobs: dict[str, list[int]] = {}  # phase -> [jobs, their stages]
        self._spark = spark
        self._scheduler = _scheduler(spark) if spark is not None else None
        self._last = time.monotonic()
        self._next_job = self._job_counter()

    def _job_counter(self) -> int:
        return 0 if self._scheduler is None else int(self._scheduler.numTotalJobs())

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self._last, 3)
        self._last = now
        if self._scheduler is None or self._spark is None:
            return
        upto = self._job_counter()
        tracker = self._spark.sparkContext.statusTracker()
        infos = [tracker.getJobInfo(i) for i in range(self._next_job, upto)]
        stages = sum(len(info.stageIds) for info in infos if info is not None)
        self.jobs[name] = [upto - self._next_job, stages]
        self._next_job = upto


def _scheduler(spark: SparkSession) -> Any:
    """The driver's DAG scheduler, whose job counter says how many jobs a phase started; None
    where the JVM does not offer it (a later Spark, Spark Connect)."""
    from py4j.protocol import Py4JError

    try:
        scheduler = spark.sparkContext._jsc.sc().dagScheduler()
        scheduler.numTotalJobs()
    except (Py4JError, AttributeError):
        return None
    return scheduler


class AlertSink:
    """``foreachBatch`` of the query: rejected messages to the quarantine; features and scores
    of the new events, their alerts; each table's append made once per batch id.

    Spark replays a micro-batch only when a query starts (again) from its checkpoint and the
    batch's commit is not in it: the sink may have appended some of its tables before a crash.
    So the first batch a sink sees, and any batch after a failed one, checks each table first:
    the scored events and the alerts by their rows' own ``batch_id`` (a table written by another
    stream with the same batch ids would fool it), the quarantine by Delta's application
    transaction. The batches after one that committed in full are new: plain appends. Delta's
    transaction check costs a Spark job of three stages an append (in delta-spark 4.4 it rebuilds
    the log's state), which a plain append does not; rejected messages are rare.
    """

    def __init__(
        self,
        *,
        tables: Tables,
        settings: StreamSettings,
        ref: Reference,
        fraud: FraudSettings,
        champion: Champion,
    ) -> None:
        self.tables = tables
        self.settings = settings
        self.ref = ref
        self.fraud = fraud
        self.champion = champion
        self._producer: Any = None
        self._clean_after: int | None = None  # the last batch whose appends all committed

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        phases = _Phases(batch_df.sparkSession if self.settings.metrics_path else None)
        follows_clean = self._clean_after == batch_id - 1
        self._clean_after = None  # until this batch's appends have all committed
        rows = batch_df.persist()
        scored: DataFrame | None = None
        try:
            # One job runs the micro-batch into the cache and says what the rest needs.
            got = rows.agg(*batch_lookups(rows, max_ids=self.settings.max_literal_ids)).first()
            assert got is not None  # a global aggregate has one row
            phases.lap("state")  # source, parsing, deduplication, enrichment, velocity state
            app = self.settings.name
            writes: list[tuple[str, DataFrame, str]] = []
            if got["rejected"]:
                rejected = rows.where(F.col("reason").isNotNull()).select(*E.QUARANTINE_COLUMNS)
                writes.append((QUARANTINE_TABLE, rejected, f"{app}/{REJECTED_APP}"))
            alert_list: list[dict[str, Any]] = []
            if got["new"]:
                alert_list, scored, scored_writes = self._score(
                    rows,
                    batch_id,
                    phases,
                    customers=got["customers"],
                    transaction_ids=got["transaction_ids"],
                )
                writes += scored_writes
            # Two or three tables, a Delta commit each: a commit is mostly driver work (log,
            # snapshot), so they overlap on two cores.
            in_parallel(
                lambda w: self._append(*w, batch_id=batch_id, check=not follows_clean), writes
            )
            self._clean_after = batch_id
            if not writes:
                return
            committed = time.time()
            phases.lap("commit")
            self._publish(alert_list)
            phases.lap("publish")
            self._metrics(
                got["sent_ms"],
                batch_id,
                committed,
                events=got["new"],
                first_sent_ms=got["first_sent_ms"],
                alerts=len(alert_list),
                phases=phases.seconds,
                jobs=phases.jobs,
            )
        finally:  # a failed commit must not leave the batch's frames cached for the next one
            if scored is not None:
                scored.unpersist()
            rows.unpersist()

    def _score(
        self,
        rows: DataFrame,
        batch_id: int,
        phases: _Phases,
        *,
        customers: Sequence[str] | None,
        transaction_ids: Sequence[str] | None,
    ) -> tuple[list[dict[str, Any]], DataFrame, list[tuple[str, DataFrame, str]]]:
        """Features and scores of the batch's new events (cached), its alerts as dictionaries
        (bounded by the batch size) and the appends of both; ``customers`` and
        ``transaction_ids`` as :func:`with_live_features` takes them (the first job's sets, or
        None for a batch too big for them)."""
        champion = self.champion.current()
        phases.lap("champion")
        from cardlake.ml.common import with_score

        events = rows.where(F.col("reason").isNull()).select(*_STATE_OUTPUT)
        feats = with_live_features(
            events,
            ref=self.ref,
            fraud=self.fraud,
            small_amount_usd=champion.small_amount_usd,
            customers=customers,
            transaction_ids=transaction_ids,
        )
        phases.lap("features")
        scored = with_score(champion.model, feats).persist()
        now = datetime.now(UTC)
        alerts = alert_rows(
            scored,
            threshold=champion.threshold,
            version=champion.version,
            max_reasons=self.fraud.max_reasons,
            batch_id=batch_id,
            alert_time=now,
        )
        phases.lap("plan")
        # The one job that computes the features and scores (into the cache): the appends read
        # them from there.
        alert_list = [r.asDict() for r in alerts.collect()]
        phases.lap("score")
        app = self.settings.name
        writes = [
            (
                SCORED_TABLE,
                scored_rows(
                    scored,
                    threshold=champion.threshold,
                    version=champion.version,
                    batch_id=batch_id,
                    scored_at=now,
                ),
                f"{app}/scored",
            )
        ]
        if alert_list:
            writes.append((ALERTS_TABLE, alerts, f"{app}/alerts"))
        return alert_list, scored, writes

    def _append(
        self, table: str, df: DataFrame, app_id: str, *, batch_id: int, check: bool
    ) -> None:
        """Appends ``df`` unless ``table`` has it already (only looked for with ``check``)."""
        if table not in _BATCH_KEYED:
            idempotency = Idempotency(app_id, batch_id)
            self.tables.append(table, df, partition_by=["month"], idempotency=idempotency)
            return
        if check and self._has_batch(table, batch_id):
            log.warning(
                "fraud stream: batch %d is in %s already (replayed after a crash): not appended",
                batch_id,
                table,
            )
            return
        # One task writes the batch (a file a month, not one per cached partition): each file
        # costs a Parquet writer and its statistics in the log, and readers open one per file.
        self.tables.append(table, df.coalesce(1), partition_by=["month"])

    def _has_batch(self, table: str, batch_id: int) -> bool:
        # Delta's file statistics on batch_id leave the files of other batches unread.
        if not self.tables.exists(table):
            return False
        found = self.tables.read(table).where(F.col("batch_id") == batch_id).limit(1)
        return bool(found.count())

    def _publish(self, alerts: list[dict[str, Any]]) -> None:
        if not alerts or not self.settings.bootstrap:
            return
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(
                {
                    "bootstrap.servers": self.settings.bootstrap,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "log_level": 3,
                }
            )
        for alert in alerts:
            self._producer.produce(
                self.settings.alerts_topic,
                key=str(alert["event_id"]),
                value=json.dumps(alert, default=str),
            )
        left = self._producer.flush(ALERT_FLUSH_SECONDS)
        if left:
            raise RuntimeError(f"fraud stream: {left} alerts not acknowledged by the broker")

    def _metrics(
        self,
        sent_ms: list[int],
        batch_id: int,
        committed: float,
        *,
        events: int,
        first_sent_ms: int | None,
        alerts: int,
        phases: dict[str, float],
        jobs: dict[str, list[int]],
    ) -> None:
        """Logs the batch's latencies; ``sent_ms`` holds at most ``max_literal_ids`` of its
        ``events`` send times (all but in a batch that big), ``first_sent_ms`` the earliest."""
        lat = sorted(committed - s / 1000.0 for s in sent_ms)
        if lat and first_sent_ms is not None:
            log.info(
                "fraud stream batch %d: %d events, %d alerts, latency p50 %.2f s%s max %.2f s; %s",
                batch_id,
                events,
                alerts,
                lat[len(lat) // 2],
                "" if len(lat) == events else f" (of {len(lat)})",
                committed - first_sent_ms / 1000.0,
                ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()),
            )
        if self.settings.metrics_path:
            with open(self.settings.metrics_path, "a", encoding="utf-8") as out:
                out.write(
                    json.dumps(
                        {
                            "batch_id": batch_id,
                            "committed": committed,
                            "events": events,
                            "alerts": alerts,
                            "latencies": lat,
                            "phases": phases,
                            "jobs": jobs,
                        }
                    )
                    + "\n"
                )


# -- the job -------------------------------------------------------------------------------


@dataclass
class Running:
    """The running query, and how to start it again from its checkpoint."""

    query: Any
    starter: Callable[[], Any]
    restarts: int = 0

    def stop(self) -> None:
        self.query.stop()

    def restart(self) -> None:
        """Starts the query again from its checkpoint."""
        self.restarts += 1
        self.query = self.starter()


def is_recovery_metrics_bug(error: Any) -> bool:
    """Whether a query died of SPARK-57438: the Kafka source's metrics on the first batch after
    a restart. The batch's commit is written before the metrics run, so starting the query again
    resumes at the next batch and loses or repeats nothing."""
    parts: list[str] = []
    cause = error
    for _ in range(5):  # the exception, then its causes (pyspark keeps the JVM trace aside)
        if cause is None:
            break
        parts += [
            str(getattr(cause, "_desc", "") or cause),
            str(getattr(cause, "_stackTrace", "") or ""),
        ]
        cause = getattr(cause, "_cause", None)
    text = "\n".join(parts)
    return (
        'because the return value of "scala.Option.get()" is null' in text
        and "KafkaMicroBatchStream" in text
    )


def _progress_recorder(path: str) -> Any:
    """A listener appending each micro-batch's Spark phases (``durationMs``) to ``path``."""
    from pyspark.sql.streaming import StreamingQueryListener

    class ProgressRecorder(StreamingQueryListener):
        def onQueryStarted(self, event: Any) -> None:
            pass

        def onQueryIdle(self, event: Any) -> None:
            pass

        def onQueryTerminated(self, event: Any) -> None:
            pass

        def onQueryProgress(self, event: Any) -> None:
            p = event.progress
            if not p.numInputRows:
                return
            with open(path, "a", encoding="utf-8") as out:
                out.write(
                    json.dumps(
                        {
                            "query": p.name,
                            "batch_id": p.batchId,
                            "rows": p.numInputRows,
                            "durations": p.durationMs,
                        }
                    )
                    + "\n"
                )

    return ProgressRecorder()


def start(spark: SparkSession, cfg: Config, tables: Tables, settings: StreamSettings) -> Running:
    """Starts the query from its checkpoint under ``<lake_root>/_checkpoints/<name>/alerts``."""
    from pyspark.sql.streaming.state import GroupStateTimeout

    from cardlake.ml import tracking
    from cardlake.ml.settings import load_ml_settings

    ml = load_ml_settings(cfg.env)
    tracker = tracking.Tracker.configure(cfg.paths.lake_root, ml.tracking)  # sets MLflow's URIs
    champion = Champion(
        name=ml.fraud.model_name,
        tracking_uri=tracker.uri,
        refresh_seconds=settings.model_refresh_seconds,
        fallback_small_usd=ml.fraud.small_amount_usd,
    )
    champion.current()  # fail at start, not in the first batch, when there is no champion
    ref = load_reference(tables)
    events_dir = settings.events_dir or f"{cfg.paths.landing_root.rstrip('/')}/events"
    checkpoints = cfg.lake_path("_checkpoints", settings.name)
    parsed = read_source(spark, settings, events_dir).transform(E.with_parsed_events)
    good = (
        parsed.where(F.col("reason").isNull())
        .withWatermark("event_time", settings.watermark)
        .dropDuplicatesWithinWatermark(["event_id"])
    )
    stateful = (
        good.transform(lambda df: with_enrichment(df, ref=ref))
        .withColumn(STATE_BUCKET, state_bucket(F.col(STATE_KEY), settings.state_buckets))
        .groupBy(STATE_BUCKET)
        .applyInPandasWithState(
            velocity_state_fn(settings.retain_days, settings.state_buckets),
            OUTPUT_SCHEMA,
            STATE_SCHEMA,
            "append",
            GroupStateTimeout.EventTimeTimeout,
        )
    )
    # The rejected messages ride in the same micro-batches (a row with a reason, null in the
    # state's columns), so the source is read by one query and the sink tells them apart.
    batches = stateful.unionByName(E.quarantine_rows(parsed), allowMissingColumns=True)
    trigger = f"{settings.trigger_seconds:g} seconds"
    sink = AlertSink(tables=tables, settings=settings, ref=ref, fraud=ml.fraud, champion=champion)

    def start_query() -> Any:
        return (
            batches.writeStream.queryName(f"{settings.name}-alerts")
            .foreachBatch(sink)
            .option("checkpointLocation", f"{checkpoints}/alerts")
            .trigger(processingTime=trigger)
            .start()
        )

    if settings.metrics_path:
        spark.streams.addListener(_progress_recorder(settings.metrics_path))
    return Running(query=start_query(), starter=start_query)


def await_idle(running: Running, *, idle_seconds: float, max_seconds: float) -> None:
    """Blocks until the query has had no input for ``idle_seconds`` (after some) or time is up.

    Raises:
        the query's failure, if it fails.
    """
    started = time.monotonic()
    last_input = started
    seen: tuple[Any, Any] | None = None
    while time.monotonic() - started < max_seconds:
        error = running.query.exception()
        if error is not None:
            if not is_recovery_metrics_bug(error) or running.restarts >= MAX_METRICS_RESTARTS:
                raise error
            log.warning(
                "fraud stream: the query hit SPARK-57438 after its recovered batch committed; "
                "starting it again from its checkpoint"
            )
            running.restart()
            last_input = time.monotonic()
            continue
        # The query is busy while its current trigger has data; "trigger active" is no sign of
        # input (a 0 s trigger polls its source all the time), and a no-data progress event
        # comes only every 10 s, so a batch is counted when a new one with input reports.
        if running.query.status.get("isDataAvailable"):
            last_input = time.monotonic()
        progress = running.query.lastProgress
        if progress and progress.get("numInputRows", 0):
            batch = (progress.get("runId"), progress.get("batchId"))
            if seen != batch:
                seen = batch
                last_input = time.monotonic()
        started_once = running.query.lastProgress is not None
        if idle_seconds and started_once and time.monotonic() - last_input >= idle_seconds:
            return
        time.sleep(0.5)
