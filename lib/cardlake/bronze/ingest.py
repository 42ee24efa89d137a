"""Bronze ingestion: landing files of a source in, ``bronze.<source>`` and quarantine out.

Each file once: the driver lists and hashes the landing files, and ``_ops.ingest_manifest``
says which (path, sha256) were processed; an identical re-delivery is recorded as
``skipped_duplicate_file``. All new files of a source are one Spark read. Per file,
``rows_read = rows_accepted + rows_quarantined`` is recorded in ``_ops.ingest_log``; exact
duplicate records (same raw text, within the batch or already in bronze) are accepted but not
written again, and counted as ``rows_duplicate``.

Crash safety: the manifest is written last. Every other write carries
``Idempotency("bronze_ingest/<table>/<source>", manifest version + 1)``, so a run that died
before the manifest commit replays the same batch and the writes already made are skipped.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from cardlake.bronze import readers as R
from cardlake.bronze.checks import (
    REASON,
    REASON_CODE,
    nested_date_check,
    nested_set_check,
    with_checks,
)
from cardlake.bronze.contracts import (
    CONTRACTS,
    INGEST_ORDER,
    BronzeConfig,
    Feed,
    SourceContract,
)
from cardlake.bronze.tokenise import card_token, last_four, masked_card_numbers
from cardlake.quality import Check, Validator
from cardlake.tables import Idempotency, Tables
from cardlake.tables.base import SchemaMode

log = logging.getLogger(__name__)

MANIFEST, INGEST_LOG, DQ_RESULTS = "_ops.ingest_manifest", "_ops.ingest_log", "_ops.dq_results"
PARTITION = "ingest_month"
STATUS_INGESTED, STATUS_SKIPPED = "ingested", "skipped_duplicate_file"
LINEAGE = ("_source", "_source_file", "_line", "_ingested_at", "_batch_id", "_record_hash")
_HASH_CHUNK = 1 << 20

MANIFEST_SCHEMA = StructType([
    StructField("path", StringType()), StructField("size_bytes", LongType()),
    StructField("sha256", StringType()), StructField("source", StringType()),
    StructField("month", StringType()), StructField("batch_id", StringType()),
    StructField("status", StringType()), StructField("duplicate_of", StringType()),
    StructField("rows_read", LongType()), StructField("rows_accepted", LongType()),
    StructField("rows_quarantined", LongType()), StructField("rows_duplicate", LongType()),
    StructField("ingested_at", TimestampType()),
])
LOG_SCHEMA = StructType([
    StructField("batch_id", StringType()), StructField("source", StringType()),
    StructField("month", StringType()), StructField("path", StringType()),
    StructField("rows_read", LongType()), StructField("rows_accepted", LongType()),
    StructField("rows_quarantined", LongType()), StructField("rows_duplicate", LongType()),
    StructField("rows_written", LongType()), StructField("reconciled", BooleanType()),
    StructField("ingested_at", TimestampType()),
])
DQ_SCHEMA = StructType([
    StructField("run_id", StringType()), StructField("run_at", TimestampType()),
    StructField("suite_name", StringType()), StructField("expectation", StringType()),
    StructField("kwargs", StringType()), StructField("critical", BooleanType()),
    StructField("success", BooleanType()), StructField("observed", StringType()),
    StructField("batch_id", StringType()),
])


class BronzeContractError(RuntimeError):
    """A delivery breaks its source's contract as a whole (a column lost or not allowed)."""


@dataclass(frozen=True)
class LandedFile:
    rel_path: str  # <source>/<YYYY-MM>/<file>, as in the truth manifests
    abs_path: str
    source: str
    month: str
    size: int
    sha256: str


@dataclass
class SourceReport:
    source: str
    batch_id: str | None = None
    files_ingested: int = 0
    files_skipped: int = 0
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    dq_success: bool = True
    per_file: list[dict[str, Any]] = field(default_factory=list)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def discover(
    landing_root: str, source: str, months: Sequence[str] | None = None
) -> list[LandedFile]:
    """The landing files of ``source`` (all months, or ``months``), sorted by path, hashed."""
    base = Path(landing_root) / source
    if not base.is_dir():
        return []
    out = []
    for month_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        if months and month_dir.name not in months:
            continue
        for f in sorted(p for p in month_dir.iterdir() if p.is_file()):
            if f.name.startswith("."):  # files still being written land under a dot name
                continue
            out.append(LandedFile(
                rel_path=f"{source}/{month_dir.name}/{f.name}", abs_path=str(f), source=source,
                month=month_dir.name, size=f.stat().st_size, sha256=sha256_file(str(f)),
            ))
    return out


def plan_files(
    files: Sequence[LandedFile], processed: Sequence[tuple[str, str, str]]
) -> tuple[list[LandedFile], list[tuple[LandedFile, str]]]:
    """Splits files into (to ingest, identical re-deliveries with the path they repeat).

    Args:
        files: the landed files, sorted by path (an original sorts before its re-delivery).
        processed: (path, sha256, status) already in the manifest.
    """
    done = {(p, s) for p, s, _ in processed}
    by_hash = {s: p for p, s, status in processed if status == STATUS_INGESTED}
    fresh, skipped = [], []
    for f in files:
        if (f.rel_path, f.sha256) in done:
            continue
        if f.sha256 in by_hash:
            skipped.append((f, by_hash[f.sha256]))
            continue
        by_hash[f.sha256] = f.rel_path
        fresh.append(f)
    return fresh, skipped


# ---------------------------------------------------------------------------- parsing


def _parse_feed(
    spark: SparkSession, contract: SourceContract, feed: Feed, files: Sequence[LandedFile],
    settings: BronzeConfig,
) -> tuple[DataFrame, list[str]]:
    """Reads one feed's files; returns checked rows (typed fields + reason) and new columns."""
    source_cfg = settings.sources[contract.name]
    files_df = R.read_files(spark, [f.abs_path for f in files])
    names = [f.name for f in feed.fields]
    extra: list[str] = []
    extra_checks: list[tuple[Column, str, Column]] = []
    if feed.format == "csv":
        records = R.csv_records(files_df).persist(StorageLevel.MEMORY_AND_DISK)
        header_rows = records.filter(F.col(R.IS_HEADER)).select(R.FILE, R.FIELDS).collect()
        headers: dict[tuple[str, ...], list[str]] = {}
        for row in header_rows:
            headers.setdefault(tuple(row[R.FIELDS] or ()), []).append(row[R.FILE])
        for header, paths in headers.items():
            missing = [c for c in names if c not in header]
            if missing:
                raise BronzeContractError(
                    f"{contract.name}: {paths[0]} lacks the required column(s) {missing}"
                )
            new = [c for c in header if c not in names and c not in extra]
            if new and source_cfg.on_new_column == "reject":
                raise BronzeContractError(
                    f"{contract.name}: {paths[0]} has column(s) {new} the contract does not know "
                    "(conf/bronze.yaml: on_new_column: reject)"
                )
            extra.extend(new)
        parsed = R.parse_csv(records, headers=headers, columns=[*names, *extra])
    elif feed.format == "jsonl":
        assert feed.json_schema is not None
        lines_df = R.lines(files_df).persist(StorageLevel.MEMORY_AND_DISK)
        known = set(feed.json_schema.fieldNames())
        for path, keys in sorted(R.json_keys_by_file(lines_df).items()):
            top_level_of = {feed.paths.get(n, n).split(".")[0] for n in names}
            missing = sorted(top_level_of - keys)
            if missing:
                raise BronzeContractError(
                    f"{contract.name}: {path} lacks the required field(s) {missing}"
                )
            new = sorted(keys - known - set(extra))
            if new and source_cfg.on_new_column == "reject":
                raise BronzeContractError(
                    f"{contract.name}: {path} has field(s) {new} the contract does not know "
                    "(conf/bronze.yaml: on_new_column: reject)"
                )
            extra.extend(new)
        if feed.paths or (feed.fields and len(feed.fields) > 2):
            columns = names
        else:  # a nested document: keep its whole structure
            columns = list(dict.fromkeys([*feed.json_schema.fieldNames()]))
        parsed = R.parse_json(lines_df, schema=feed.json_schema, paths=feed.paths,
                              columns=columns, extra=extra)
        if contract.name == "financial_records":
            extra_checks = _financial_checks(settings)
    elif feed.format == "xml":
        lines_df = R.lines(files_df, header_lines=feed.header_lines, footer=feed.footer)
        parsed = R.parse_xml(lines_df, feed=feed, row_tag="person", columns=names)
    else:
        assert feed.pattern is not None
        parsed = R.parse_log(R.lines(files_df), pattern=feed.pattern, columns=names)
    checked = with_checks(parsed, fields=feed.fields, reference=settings.reference,
                          extra_checks=extra_checks)
    return checked, extra


def _financial_checks(settings: BronzeConfig) -> list[tuple[Column, str, Column]]:
    ref = settings.reference
    return [
        nested_date_check("holder.date_of_birth", "holder.date_of_birth"),
        nested_set_check(None, "address.country", ref.countries, "unknown_country",
                         "address.country"),
        nested_set_check("accounts", "currency", ref.currencies, "unknown_currency",
                         "accounts[].currency"),
        (F.exists("accounts", lambda a: F.try_to_timestamp(a["opened"], F.lit("yyyy-MM-dd"))
                  .isNull() & a["opened"].isNotNull()), "unparseable_date",
         F.lit("accounts[].opened: not a valid date")),
    ]


def _tokenised(df: DataFrame, contract: SourceContract, key: bytes) -> DataFrame:
    """Replaces the clear card column by ``card_token`` and ``card_last4`` (never stored)."""
    col_name = contract.card_column
    if col_name is None or col_name not in df.columns:
        return df
    if col_name == "cards":
        cards = F.transform("cards", lambda c: F.struct(
            card_token(c["card_id"], key).alias("card_token"), c["network"].alias("network"),
            c["type"].alias("type"), c["last4"].alias("last4"), c["issued"].alias("issued"),
            c["status"].alias("status"),
        ))
        return df.withColumn("cards", cards)
    value = F.col(col_name)
    is_card = value.startswith("CARD") if col_name == "instrument_id" else value.isNotNull()
    out = df.withColumn("card_token", F.when(is_card, card_token(value, key))).withColumn(
        "card_last4", F.when(is_card, last_four(value))
    )
    if col_name == "instrument_id":
        out = out.withColumn("wallet_id", F.when(~is_card, value))
    return out.drop(col_name)


# ---------------------------------------------------------------------------- references


def _with_references(
    df: DataFrame, contract: SourceContract, tables: Tables, settings: BronzeConfig
) -> DataFrame:
    """Marks good records whose reference names nothing known as ``orphan_reference``."""
    for ref in contract.references:
        if ref.column not in df.columns:
            continue
        known_parts = []
        if tables.exists(ref.table):
            known_parts.append(tables.read(ref.table).select(F.expr(ref.ref_expr).alias("k")))
        quarantine = "_quarantine." + ref.table.split(".", 1)[1]
        if ref.quarantine_pattern and tables.exists(quarantine):
            known_parts.append(tables.read(quarantine).select(
                F.regexp_extract("raw_text", ref.quarantine_pattern, 1).alias("k")))
        if ref.table == contract.table:
            known_parts.append(df.filter(F.col(REASON_CODE).isNull()).select(
                F.col(ref.column).alias("k")))
        if not known_parts:
            continue
        known = reduce(DataFrame.unionByName, known_parts).filter(F.col("k").isNotNull())
        known = known.groupBy("k").agg(F.lit(True).alias("_known"))
        key = F.col(ref.column)
        joined = df.join(known, key == F.col("k"), how="left").drop("k")
        orphan = key.isNotNull() & F.col("_known").isNull() & F.col(REASON_CODE).isNull()
        if ref.corroborate:
            seen = [df.filter(F.col(REASON_CODE).isNull()).select(F.col(ref.column).alias("c"))]
            if tables.exists(contract.table) and ref.column in tables.schema(contract.table).names:
                seen.append(tables.read(contract.table).select(F.col(ref.column).alias("c")))
            counts = reduce(DataFrame.unionByName, seen).groupBy("c").agg(
                F.count(F.lit(1)).alias("_seen"))
            joined = joined.join(counts, key == F.col("c"), how="left").drop("c")
            orphan = orphan & (F.coalesce(F.col("_seen"), F.lit(0)) < settings.min_corroboration)
        message = F.format_string("%s: %s names no known record of %s", F.lit(ref.column),
                                  key, F.lit(ref.table))
        df = joined.select(
            *[c for c in df.columns if c not in (REASON_CODE, REASON)],
            F.when(orphan, F.lit("orphan_reference")).otherwise(F.col(REASON_CODE))
            .alias(REASON_CODE),
            F.when(orphan, message).otherwise(F.col(REASON)).alias(REASON),
        )
    return df


# ---------------------------------------------------------------------------- the batch


def _expectations(contract: SourceContract, columns: Sequence[str], settings: BronzeConfig
                  ) -> list[Check]:
    checks = [Check("ExpectTableColumnsToMatchSet",
                    {"column_set": list(columns), "exact_match": False})]
    checks += [Check("ExpectColumnValuesToNotBeNull", {"column": k}) for k in contract.key]
    fields = {f.name: f for feed in contract.feeds for f in feed.fields}
    for name, f in fields.items():
        if name not in columns:
            continue
        if f.check == "amount":
            checks.append(Check("ExpectColumnValuesToBeBetween", {
                "column": name, "min_value": 0, "max_value": settings.reference.max_amount,
                "strict_min": True}))
        elif f.check == "currency":
            checks.append(Check("ExpectColumnValuesToBeInSet", {
                "column": name, "value_set": list(settings.reference.currencies)}))
    if "_line" in columns:
        checks.append(Check("ExpectColumnValuesToNotBeNull", {"column": "_record_hash"}))
    return checks


def ingest_source(
    spark: SparkSession,
    tables: Tables,
    contract: SourceContract,
    settings: BronzeConfig,
    *,
    token_key: bytes,
    files: Sequence[LandedFile],
    validator: Validator | None = None,
    now: datetime | None = None,
) -> SourceReport:
    """Ingests the new files among ``files`` of one source (see the module docstring).

    Raises:
        BronzeContractError: a file lost a contract column or has a rejected new one.
        DataQualityError: a critical expectation failed (nothing was written to bronze).
    """
    report = SourceReport(contract.name)
    processed: list[tuple[str, str, str]] = []
    manifest_version = -1
    if tables.exists(MANIFEST):
        manifest_version = tables.version(MANIFEST)
        processed = [
            (r["path"], r["sha256"], r["status"])
            for r in tables.read(MANIFEST).filter(F.col("source") == contract.name)
            .select("path", "sha256", "status").collect()
        ]
    fresh, skipped = plan_files(files, processed)
    if not fresh and not skipped:
        return report
    now = now or datetime.now(UTC).replace(microsecond=0)
    batch_key = "\n".join(f"{f.rel_path}:{f.sha256}" for f in [*fresh, *(s for s, _ in skipped)])
    batch_id = f"{contract.name}-{hashlib.sha256(batch_key.encode()).hexdigest()[:16]}"
    report.batch_id = batch_id
    report.files_skipped = len(skipped)
    idem_version = manifest_version + 2  # > 0, and grows with every manifest commit

    def idem(table: str) -> Idempotency:
        return Idempotency(f"bronze_ingest/{table}/{contract.name}", idem_version)

    manifest_rows: list[dict[str, Any]] = [
        {"path": f.rel_path, "size_bytes": f.size, "sha256": f.sha256, "source": contract.name,
         "month": f.month, "batch_id": batch_id, "status": STATUS_SKIPPED, "duplicate_of": dup,
         "rows_read": 0, "rows_accepted": 0, "rows_quarantined": 0, "rows_duplicate": 0,
         "ingested_at": now}
        for f, dup in skipped
    ]
    if fresh:
        _ingest_rows(spark, tables, contract, settings, token_key=token_key, files=fresh,
                     batch_id=batch_id, now=now, idem=idem, report=report,
                     manifest_rows=manifest_rows, validator=validator or Validator())
    tables.append(MANIFEST, spark.createDataFrame(manifest_rows, MANIFEST_SCHEMA))
    log.info("bronze %s: %d file(s) ingested, %d skipped as re-deliveries; %d read, %d accepted, "
             "%d quarantined, %d duplicate", contract.name, report.files_ingested,
             report.files_skipped, report.rows_read, report.rows_accepted,
             report.rows_quarantined, report.rows_duplicate)
    return report


class DataQualityError(RuntimeError):
    """A critical expectation failed; the message names the suite and the expectations."""


def _ingest_rows(
    spark: SparkSession, tables: Tables, contract: SourceContract, settings: BronzeConfig, *,
    token_key: bytes, files: Sequence[LandedFile], batch_id: str, now: datetime,
    idem: Any, report: SourceReport, manifest_rows: list[dict[str, Any]],
    validator: Validator,
) -> None:
    parts: list[DataFrame] = []
    extras: list[str] = []
    for feed in contract.feeds:
        feed_files = [f for f in files if os.path.basename(f.rel_path).startswith(feed.prefix)]
        if not feed_files:
            continue
        checked, extra = _parse_feed(spark, contract, feed, feed_files, settings)
        extras.extend(e for e in extra if e not in extras)
        if len(contract.feeds) > 1:
            checked = checked.withColumn("feed", F.lit(feed.prefix.rstrip("_")))
        parts.append(_tokenised(checked, contract, token_key))
    unknown = [f.rel_path for f in files if contract.feed_for(os.path.basename(f.rel_path)) is None]
    if unknown:
        raise BronzeContractError(f"{contract.name}: files of no known feed: {unknown[:3]}")
    df = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
    df = df.withColumn("_record_hash", F.sha2(F.col(R.RAW), 256))
    df = _with_references(df, contract, tables, settings)
    df = df.persist(StorageLevel.MEMORY_AND_DISK)

    good = F.col(REASON_CODE).isNull()
    first = Window.partitionBy("_record_hash").orderBy(R.FILE, R.LINE)
    existing_hashes = None
    if tables.exists(contract.table):
        existing_hashes = tables.read(contract.table).select(
            F.col("_record_hash").alias("_h")).groupBy("_h").agg(F.lit(True).alias("_in_bronze"))
    accepted = df.filter(good).withColumn("_rank", F.row_number().over(first))
    if existing_hashes is not None:
        accepted = accepted.join(existing_hashes, F.col("_record_hash") == F.col("_h"),
                                 how="left").drop("_h")
    else:
        accepted = accepted.withColumn("_in_bronze", F.lit(None).cast("boolean"))
    accepted = accepted.withColumn(
        "_duplicate", (F.col("_rank") > 1) | F.coalesce(F.col("_in_bronze"), F.lit(False))
    ).persist(StorageLevel.MEMORY_AND_DISK)

    month = F.regexp_extract(R.FILE, r"^[^/]+/([^/]+)/", 1)
    lineage = [
        F.lit(contract.name).alias("_source"), F.col(R.FILE).alias("_source_file"),
        F.col(R.LINE).alias("_line"), F.lit(now).cast("timestamp").alias("_ingested_at"),
        F.lit(batch_id).alias("_batch_id"), F.col("_record_hash"), month.alias(PARTITION),
    ]
    skip = {R.FILE, R.LINE, R.RAW, REASON_CODE, REASON, "_record_hash", "_rank", "_in_bronze",
            "_duplicate", "_known", "_seen"}
    data_cols = [c for c in df.columns if c not in skip]
    bronze_df = accepted.filter(~F.col("_duplicate")).select(*data_cols, *lineage)
    bronze_df = bronze_df.persist(StorageLevel.MEMORY_AND_DISK)

    quarantine_df = df.filter(~good).select(
        month.alias(PARTITION), F.col(R.FILE).alias("source_file"),
        F.col(R.LINE).cast("int").alias("position"), F.col(REASON_CODE).alias("reason_code"),
        F.col(REASON).alias("reason"), masked_card_numbers(F.col(R.RAW)).alias("raw_text"),
        F.col("_record_hash").alias("record_hash"), F.lit(batch_id).alias("batch_id"),
        F.lit(now).cast("timestamp").alias("ingested_at"),
    )

    counts = {
        r[R.FILE]: r for r in df.groupBy(R.FILE).agg(
            F.count(F.lit(1)).alias("read"),
            F.count(F.when(good, 1)).alias("accepted"),
            F.count(F.when(~good, 1)).alias("quarantined"),
        ).collect()
    }
    dups = {r[R.FILE]: r["n"] for r in accepted.filter("_duplicate").groupBy(R.FILE)
            .agg(F.count(F.lit(1)).alias("n")).collect()}

    # Great Expectations on what bronze is about to receive; a critical failure writes nothing.
    suite_cols = bronze_df.columns
    outcome = validator.validate(bronze_df, contract.table,
                                 _expectations(contract, suite_cols, settings))
    dq_rows = [{**r, "batch_id": batch_id} for r in outcome.rows()]
    tables.append(DQ_RESULTS, spark.createDataFrame(dq_rows, DQ_SCHEMA),
                  idempotency=idem(DQ_RESULTS))
    report.dq_success = outcome.success
    if not outcome.success:
        df.unpersist()
        accepted.unpersist()
        bronze_df.unpersist()
        raise DataQualityError(f"{contract.name}: {outcome.failure_message()}")

    schema_mode: SchemaMode = "merge" if extras else "strict"
    tables.append(contract.quarantine_table, quarantine_df, partition_by=[PARTITION],
                  idempotency=idem(contract.quarantine_table))
    tables.append(contract.table, bronze_df, partition_by=[PARTITION],
                  idempotency=idem(contract.table), schema_mode=schema_mode)

    log_rows = []
    for f in files:
        c = counts.get(f.rel_path)
        read = int(c["read"]) if c else 0
        acc = int(c["accepted"]) if c else 0
        quar = int(c["quarantined"]) if c else 0
        dup = int(dups.get(f.rel_path, 0))
        log_rows.append({
            "batch_id": batch_id, "source": contract.name, "month": f.month, "path": f.rel_path,
            "rows_read": read, "rows_accepted": acc, "rows_quarantined": quar,
            "rows_duplicate": dup, "rows_written": acc - dup, "reconciled": read == acc + quar,
            "ingested_at": now,
        })
        manifest_rows.append({
            "path": f.rel_path, "size_bytes": f.size, "sha256": f.sha256,
            "source": contract.name, "month": f.month, "batch_id": batch_id,
            "status": STATUS_INGESTED, "duplicate_of": None, "rows_read": read,
            "rows_accepted": acc, "rows_quarantined": quar, "rows_duplicate": dup,
            "ingested_at": now,
        })
        report.rows_read += read
        report.rows_accepted += acc
        report.rows_quarantined += quar
        report.rows_duplicate += dup
    report.files_ingested = len(files)
    report.per_file = log_rows
    tables.append(INGEST_LOG, spark.createDataFrame(log_rows, LOG_SCHEMA),
                  idempotency=idem(INGEST_LOG))
    for cached in (df, accepted, bronze_df):
        cached.unpersist()


def run_bronze(
    spark: SparkSession,
    tables: Tables,
    settings: BronzeConfig,
    *,
    landing_root: str,
    token_key: bytes,
    sources: Sequence[str] | None = None,
    months: Sequence[str] | None = None,
    data_docs_dir: str | None = None,
) -> list[SourceReport]:
    """Ingests every (or the chosen) source, in reference order, all months found in landing."""
    wanted = list(sources) if sources else list(INGEST_ORDER)
    validator = Validator(data_docs_dir=data_docs_dir)
    reports = []
    try:
        for name in INGEST_ORDER:
            if name not in wanted:
                continue
            files = discover(landing_root, name, months)
            reports.append(ingest_source(spark, tables, CONTRACTS[name], settings,
                                         token_key=token_key, files=files, validator=validator))
    finally:
        if any(r.batch_id for r in reports) or not reports:
            validator.build_docs()
    return reports


