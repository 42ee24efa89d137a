"""Bronze ingestion: landing files of a source in, ``bronze.<source>`` and quarantine out.

Each file once: the driver lists and hashes the landing files, and ``_ops.ingest_manifest``
says which (path, digest) were processed; an identical re-delivery is recorded as
``skipped_duplicate_file``. The digest is HMAC-SHA256 with the token key, like every digest
bronze stores: a landing file holds card numbers in clear, and a plain SHA-256 of it lets anyone
who knows the rest of the file try a card number's masked digits against it (the manifest
column keeps its name, ``sha256``). All new files of a source are one Spark read. Per file,
``rows_read = rows_accepted + rows_quarantined`` is recorded in ``_ops.ingest_log``; exact
duplicate records (same raw text, within the batch or already in bronze) are accepted but not
written again, and counted as ``rows_duplicate``.

Every line accounted for: the driver counts each file's non-blank physical lines from its bytes
(no parser involved); the reader must account for each of them (a record, a quarantined line or
a framing line) or the file fails. A failing file (not text, no usable header, a contract column
missing, lines unaccounted for, changed while being read) writes nothing: it is recorded as
``failed`` with its reason in the manifest, the other files and sources are ingested, the run
ends with :class:`FilesFailedError` naming it (exit 1), and the next run tries it again.

Crash safety: the manifest is written last and is the commit point of a batch. A run that finds
rows of a batch that has no manifest entry (the previous run died between its writes) first
deletes that batch from every table it wrote, then ingests the files again with whatever else
has landed since; so a crash at any step converges to the lake an uninterrupted run builds.

Commits per run, not per source: each source writes its quarantine and bronze tables; the rows
of ``_ops.dq_results``, ``_ops.ingest_log`` and the manifest are collected in :class:`OpsRows`
and written once after the last source (three commits a run instead of three per source, and
the manifest still last). Delta commits are the fixed cost of a small run.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
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

from cardlake.bronze import landing
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
from cardlake.bronze.tokenise import (
    TOKEN_PREFIX,
    card_token,
    is_card_number,
    last_four,
    masked_card_numbers,
)
from cardlake.crashpoint import crash_point
from cardlake.errors import JobFailed
from cardlake.governance.suppression import (
    BRONZE_IDENTIFIERS,
    BRONZE_TEXT,
    QUARANTINE_TEXT,
    REFERENCES,
    filter_suppressed,
    filter_suppressed_text,
    without_suppressed_references,
)
from cardlake.quality import Check, Validator
from cardlake.quality.expectations import DEFAULT_PANDAS_MAX_ROWS
from cardlake.quality.expectations import validator as shared_validator
from cardlake.tables import Tables
from cardlake.tables.base import SchemaMode
from cardlake.threads import in_parallel

log = logging.getLogger(__name__)

MANIFEST, INGEST_LOG, DQ_RESULTS = "_ops.ingest_manifest", "_ops.ingest_log", "_ops.dq_results"
# The version of each table bronze writes as of a run's manifest commit, after which every batch
# in it was recorded: a table still at that version needs no scan for unrecorded batches.
CHECKED = "_ops.bronze_checked"
PARTITION = "ingest_month"
STATUS_INGESTED, STATUS_SKIPPED = "ingested", "skipped_duplicate_file"
STATUS_EMPTY, STATUS_FAILED = "empty", "failed"
CRASH_AT_ENV = "CARDLAKE_BRONZE_CRASH_AT"  # tests: die (os._exit) at this step of a batch
LINEAGE = ("_source", "_source_file", "_line", "_ingested_at", "_batch_id", "_record_hash")
_HASH_CHUNK = 1 << 20

MANIFEST_SCHEMA = StructType(
    [
        StructField("path", StringType()),
        StructField("size_bytes", LongType()),
        StructField("sha256", StringType()),
        StructField("source", StringType()),
        StructField("month", StringType()),
        StructField("batch_id", StringType()),
        StructField("status", StringType()),
        StructField("duplicate_of", StringType()),
        StructField("rows_read", LongType()),
        StructField("rows_accepted", LongType()),
        StructField("rows_quarantined", LongType()),
        StructField("rows_duplicate", LongType()),
        StructField("ingested_at", TimestampType()),
        StructField("reason", StringType()),
    ]
)
LOG_SCHEMA = StructType(
    [
        StructField("batch_id", StringType()),
        StructField("source", StringType()),
        StructField("month", StringType()),
        StructField("path", StringType()),
        StructField("rows_read", LongType()),
        StructField("rows_accepted", LongType()),
        StructField("rows_quarantined", LongType()),
        StructField("rows_duplicate", LongType()),
        StructField("rows_written", LongType()),
        StructField("reconciled", BooleanType()),
        StructField("ingested_at", TimestampType()),
    ]
)
DQ_SCHEMA = StructType(
    [
        StructField("run_id", StringType()),
        StructField("run_at", TimestampType()),
        StructField("suite_name", StringType()),
        StructField("expectation", StringType()),
        StructField("kwargs", StringType()),
        StructField("critical", BooleanType()),
        StructField("success", BooleanType()),
        StructField("observed", StringType()),
        StructField("batch_id", StringType()),
    ]
)


class BronzeContractError(JobFailed):
    """A delivery breaks its source's contract as a whole (a column lost or not allowed)."""


class FilesFailedError(BronzeContractError):
    """Files failed (recorded in the manifest with their reason); the others were ingested."""

    def __init__(self, failures: Sequence[tuple[str, str]]) -> None:
        self.failures = list(failures)
        shown = "; ".join(f"{path}: {reason}" for path, reason in self.failures[:10])
        more = f" (and {len(self.failures) - 10} more)" if len(self.failures) > 10 else ""
        super().__init__(
            f"bronze: {len(self.failures)} file(s) failed and were not ingested "
            f"(the next run retries them): {shown}{more}"
        )


@dataclass(frozen=True)
class LandedFile:
    rel_path: str  # <source>/<YYYY-MM>/<file>, as in the truth manifests
    abs_path: str
    source: str
    month: str
    size: int
    digest: str  # hex HMAC-SHA256(token key, the file's bytes): the manifest's ``sha256``
    lines: int = -1  # non-blank physical lines, counted from the bytes (-1: not counted)
    not_text: str | None = None  # why the bytes cannot be a text file at all (binary, NUL bytes)


def _step(point: str) -> None:
    """A named step boundary of a batch; tests make the process die here (crash tests)."""
    crash_point(CRASH_AT_ENV, point, stage="bronze")


@dataclass
class SourceReport:
    source: str
    batch_id: str | None = None
    files_ingested: int = 0
    files_skipped: int = 0
    files_empty: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    dq_success: bool = True
    per_file: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per step (profiling)

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Adds the block's wall time to ``seconds[step]`` (frames are lazy: a step's time is
        that of the Spark actions it runs, which compute what earlier steps only planned)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - started


@dataclass
class OpsRows:
    """The ``_ops`` rows of a run's batches, written together after the last source.

    The manifest is written last: it is the commit point of every batch in it.
    """

    dq: list[dict[str, Any]] = field(default_factory=list)
    ingest_log: list[dict[str, Any]] = field(default_factory=list)
    manifest: list[dict[str, Any]] = field(default_factory=list)

    def write(self, spark: SparkSession, tables: Tables) -> None:
        _step("before_dq_results")
        if self.dq:
            tables.append(DQ_RESULTS, spark.createDataFrame(self.dq, DQ_SCHEMA))
        _step("before_ingest_log")
        if self.ingest_log:
            tables.append(INGEST_LOG, spark.createDataFrame(self.ingest_log, LOG_SCHEMA))
        _step("before_manifest")
        if self.manifest:
            tables.append(
                MANIFEST, spark.createDataFrame(self.manifest, MANIFEST_SCHEMA), schema_mode="merge"
            )
        self.dq, self.ingest_log, self.manifest = [], [], []


@dataclass(frozen=True)
class Recorded:
    """What the manifest says was processed: (path, digest, status) per source, batch ids, and
    the table versions whose batches were all recorded (:data:`CHECKED`)."""

    files: dict[str, list[tuple[str, str, str]]]
    batches: set[str]
    checked: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, tables: Tables) -> Recorded:
        files: dict[str, list[tuple[str, str, str]]] = {}
        batches: set[str] = set()
        if tables.exists(MANIFEST):
            for r in (
                tables.read(MANIFEST)
                .select("source", "path", "sha256", "status", "batch_id")
                .collect()
            ):
                files.setdefault(r["source"], []).append((r["path"], r["sha256"], r["status"]))
                batches.add(r["batch_id"])
        checked: dict[str, int] = {}
        if tables.exists(CHECKED):
            checked = {r["table"]: int(r["version"]) for r in tables.read(CHECKED).collect()}
        return cls(files, batches, checked)


def _record_checked(
    spark: SparkSession, tables: Tables, names: Sequence[str], before: Mapping[str, int]
) -> None:
    """Notes the current version of ``names`` (called right after a manifest commit)."""
    now = {**before, **{n: tables.version(n) for n in names if tables.exists(n)}}
    if now == dict(before):  # nothing was written since the last note
        return
    tables.overwrite(
        CHECKED, spark.createDataFrame(sorted(now.items()), "table string, version long")
    )


def _hex_digest(path: str, digest: Any) -> str:
    # The file's bytes through ``digest`` (a hashlib or hmac object), read in chunks.
    with landing.open_input(path) as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return str(digest.hexdigest())


def file_digest(path: str, key: bytes) -> str:
    """Hex HMAC-SHA256(key, the file's bytes), read in chunks."""
    return _hex_digest(path, hmac.new(key, digestmod=hashlib.sha256))


def _plain_sha256(path: str) -> str | None:
    # Manifests written before file digests were keyed hold this; only compared, never stored.
    try:
        return _hex_digest(path, hashlib.sha256())
    except OSError:  # gone since it was listed: the accounting check names it
        return None


def landed_file(found: landing.Landed, source: str, *, key: bytes) -> LandedFile:
    """A landing file with its keyed digest, its non-blank line count and whether it is text at
    all (one read of its bytes, in the driver: no Spark pass over every file for these)."""
    data = landing.read_bytes(found.uri)
    return LandedFile(
        rel_path=f"{source}/{found.month}/{found.name}",
        abs_path=found.uri,
        source=source,
        month=found.month,
        size=len(data),
        digest=hmac.new(key, data, hashlib.sha256).hexdigest(),
        lines=R.count_nonblank_lines(data),
        not_text=R.not_text(data),
    )


def discover(
    landing_root: str, source: str, months: Sequence[str] | None = None, *, key: bytes
) -> list[LandedFile]:
    """The landing files of ``source`` (all months, or ``months``), sorted by path, with their
    digests keyed by ``key`` (the token key). The landing root may be a local folder or an
    object store (:mod:`cardlake.bronze.landing`); files still being written land under a dot
    name and are left for a later run."""
    found = landing.month_files(landing_root, source, set(months) if months else None)
    return [landed_file(f, source, key=key) for f in found]


def plan_files(
    files: Sequence[LandedFile], processed: Sequence[tuple[str, str, str]]
) -> tuple[list[LandedFile], list[tuple[LandedFile, str]]]:
    """Splits files into (to ingest, identical re-deliveries with the path they repeat).

    A lake whose manifest was written before file digests were keyed holds plain SHA-256s: a
    file its keyed digest does not place is also looked up by its plain SHA-256 (read again,
    compared, never stored), so such a lake re-ingests nothing and a re-delivery of one of its
    files is still a duplicate. New manifest rows carry the keyed digest only.

    Args:
        files: the landed files, sorted by path (an original sorts before its re-delivery).
        processed: (path, digest, status) already in the manifest.
    """
    done = {(p, s) for p, s, status in processed if status != STATUS_FAILED}  # failed: retried
    by_digest = {s: p for p, s, status in processed if status == STATUS_INGESTED}
    fresh, skipped = [], []
    # Only a manifest with rows can hold plain digests: a new lake reads no file twice.
    legacy = bool(processed)
    for f in files:
        known = [f.digest]
        if legacy and (f.rel_path, f.digest) not in done and f.digest not in by_digest:
            known += [d for d in [_plain_sha256(f.abs_path)] if d is not None]
        if any((f.rel_path, d) in done for d in known):
            continue
        original = next((by_digest[d] for d in known if d in by_digest), None)
        if original is not None and f.size > 0:  # empty files repeat nothing
            skipped.append((f, original))
            continue
        by_digest[f.digest] = f.rel_path
        fresh.append(f)
    return fresh, skipped


# ---------------------------------------------------------------------------- parsing


def _parse_feed(
    spark: SparkSession,
    contract: SourceContract,
    feed: Feed,
    files: Sequence[LandedFile],
    settings: BronzeConfig,
    failed: dict[str, str],
    token_key: bytes,
    held: list[DataFrame],
) -> tuple[DataFrame, list[str]]:
    """Reads one feed's files; returns checked rows (typed fields + reason) and new columns.

    The frames it caches are added to ``held``; the caller releases them.

    A file that breaks the contract as a whole (not text, an unreadable header, a required
    column missing, a new column where the source rejects them) is added to ``failed`` with
    the reason; its rows stay in the output (the caller drops them after the line accounting).
    """
    source_cfg = settings.sources[contract.name]
    files_df = R.read_files(spark, [f.abs_path for f in files], sizes=[f.size for f in files])
    for f in files:
        if f.not_text is not None:
            failed.setdefault(f.rel_path, f.not_text)
    names = [f.name for f in feed.fields]
    extra: list[str] = []
    extra_checks: list[tuple[Column, str, Column]] = []
    if feed.format == "csv":
        records = R.csv_records(files_df, key=token_key).persist(StorageLevel.MEMORY_AND_DISK)
        held.append(records)
        header_rows = (
            records.filter(F.col(R.IS_HEADER)).select(R.FILE, R.LINE, R.FIELDS, R.ERROR).collect()
        )
        headers: dict[tuple[str, ...], list[str]] = {}
        for row in header_rows:
            path = row[R.FILE]
            if row[R.FIELDS] is None:
                failed.setdefault(path, f"no readable CSV header: {row[R.ERROR]}")
                continue
            header = tuple(row[R.FIELDS])
            missing = [c for c in names if c not in header]
            if missing:
                failed.setdefault(
                    path,
                    f"line {row[R.LINE]}: the header lacks the required "
                    f"column(s) {missing} (is this a {feed.format} file of "
                    f"{contract.name}?)",
                )
                continue
            new = [c for c in header if c not in names]
            if new and source_cfg.on_new_column == "reject":
                failed.setdefault(
                    path,
                    f"line {row[R.LINE]}: the header has column(s) {new} "
                    "the contract does not know (conf/bronze.yaml: "
                    "on_new_column: reject)",
                )
                continue
            extra.extend(c for c in new if c not in extra)
            headers.setdefault(header, []).append(path)
        parsed = R.parse_csv(records, headers=headers, columns=[*names, *extra])
    elif feed.format == "jsonl":
        assert feed.json_schema is not None
        lines_df = R.lines(files_df, key=token_key).persist(StorageLevel.MEMORY_AND_DISK)
        held.append(lines_df)
        known = set(feed.json_schema.fieldNames())
        top_level_of = {feed.paths.get(n, n).split(".")[0] for n in names}
        for path, keys in sorted(R.json_keys_by_file(lines_df).items()):
            missing = sorted(top_level_of - keys)
            if missing:
                failed.setdefault(
                    path, f"no JSON object in the file has the required field(s) {missing}"
                )
                continue
            new = sorted(keys - known)
            if new and source_cfg.on_new_column == "reject":
                failed.setdefault(
                    path,
                    f"field(s) {new} the contract does not know "
                    "(conf/bronze.yaml: on_new_column: reject)",
                )
                continue
            extra.extend(c for c in new if c not in extra)
        if feed.paths or (feed.fields and len(feed.fields) > 2):
            columns = names
        else:  # a nested document: keep its whole structure
            columns = list(dict.fromkeys([*feed.json_schema.fieldNames()]))
        parsed = R.parse_json(
            lines_df, schema=feed.json_schema, paths=feed.paths, columns=columns, extra=extra
        )
        if contract.name == "financial_records":
            extra_checks = _financial_checks(settings)
    elif feed.format == "xml":
        lines_df = R.lines(files_df, key=token_key, structural=R.xml_structure(feed))
        parsed = R.parse_xml(lines_df, feed=feed, row_tag="person", columns=names)
    else:
        assert feed.pattern is not None
        parsed = R.parse_log(R.lines(files_df, key=token_key), pattern=feed.pattern, columns=names)
    checked = with_checks(
        parsed, fields=feed.fields, reference=settings.reference, extra_checks=extra_checks
    )
    return checked, extra


def _financial_checks(settings: BronzeConfig) -> list[tuple[Column, str, Column]]:
    ref = settings.reference
    return [
        nested_date_check("holder.date_of_birth", "holder.date_of_birth"),
        nested_set_check(
            None, "address.country", ref.countries, "unknown_country", "address.country"
        ),
        nested_set_check(
            "accounts", "currency", ref.currencies, "unknown_currency", "accounts[].currency"
        ),
        (
            F.exists(
                "accounts",
                lambda a: (
                    F.try_to_timestamp(a["opened"], F.lit("yyyy-MM-dd")).isNull()
                    & a["opened"].isNotNull()
                ),
            ),
            "unparseable_date",
            F.lit("accounts[].opened: not a valid date"),
        ),
    ]


def _tokenised(df: DataFrame, contract: SourceContract, key: bytes) -> DataFrame:
    """The card column as ``card_token`` and ``card_last4`` (the readers already swapped every
    card number in the line for its token; an old ``CARD...`` id is tokenised here)."""
    col_name = contract.card_column
    if col_name is None or col_name not in df.columns:
        return df
    if col_name == "cards":
        # Spark runs no Python function inside a higher-order one: a card number in the
        # document is a token already; any other card id is not a card number (null).
        cards = F.transform(
            "cards",
            lambda c: F.struct(
                F.when(c["card_id"].startswith(TOKEN_PREFIX), c["card_id"]).alias("card_token"),
                c["network"].alias("network"),
                c["type"].alias("type"),
                c["last4"].alias("last4"),
                c["issued"].alias("issued"),
                c["status"].alias("status"),
            ),
        )
        return df.withColumn("cards", cards)
    value = F.col(col_name)
    is_card = is_card_number(value) if col_name == "instrument_id" else value.isNotNull()
    last4 = F.coalesce(
        F.element_at(F.col(R.PANS), value), F.when(value.startswith("CARD"), last_four(value))
    )
    # The readers made every card number a token already: only other ids (an old ``CARD...``)
    # go through the Python function; Spark runs it on every row whatever the condition, so
    # it gets a null for the tokens instead of their text both ways.
    is_token = F.coalesce(value.startswith(TOKEN_PREFIX), F.lit(False))
    token = F.when(is_token, value).otherwise(card_token(F.when(~is_token, value), key))
    out = df.withColumn("card_token", F.when(is_card, token)).withColumn(
        "card_last4", F.when(is_card, last4)
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
        # Keys named by quarantined records of the referenced source are real too. Card
        # numbers are tokens in the raw text already, so every token there counts.
        pattern = ref.quarantine_pattern or (
            rf"({TOKEN_PREFIX}[0-9a-f]{{64}})" if ref.column == "card_token" else None
        )
        if pattern and tables.exists(quarantine):
            known_parts.append(
                tables.read(quarantine).select(
                    F.explode(F.regexp_extract_all("raw_text", F.lit(pattern), 1)).alias("k")
                )
            )
        if ref.table == contract.table:
            known_parts.append(
                df.filter(F.col(REASON_CODE).isNull()).select(F.col(ref.column).alias("k"))
            )
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
            counts = (
                reduce(DataFrame.unionByName, seen)
                .groupBy("c")
                .agg(F.count(F.lit(1)).alias("_seen"))
            )
            joined = joined.join(counts, key == F.col("c"), how="left").drop("c")
            orphan = orphan & (F.coalesce(F.col("_seen"), F.lit(0)) < settings.min_corroboration)
        message = F.format_string(
            "%s: %s names no known record of %s", F.lit(ref.column), key, F.lit(ref.table)
        )
        df = joined.select(
            *[c for c in df.columns if c not in (REASON_CODE, REASON)],
            F.when(orphan, F.lit("orphan_reference"))
            .otherwise(F.col(REASON_CODE))
            .alias(REASON_CODE),
            F.when(orphan, message).otherwise(F.col(REASON)).alias(REASON),
        )
    return df


# ---------------------------------------------------------------------------- the batch


def _expectations(
    contract: SourceContract, columns: Sequence[str], settings: BronzeConfig
) -> list[Check]:
    checks = [
        Check("ExpectTableColumnsToMatchSet", {"column_set": list(columns), "exact_match": False})
    ]
    checks += [Check("ExpectColumnValuesToNotBeNull", {"column": k}) for k in contract.key]
    fields = {f.name: f for feed in contract.feeds for f in feed.fields}
    for name, f in fields.items():
        if name not in columns:
            continue
        if f.check == "amount":
            checks.append(
                Check(
                    "ExpectColumnValuesToBeBetween",
                    {
                        "column": name,
                        "min_value": 0,
                        "max_value": settings.reference.max_amount,
                        "strict_min": True,
                    },
                )
            )
        elif f.check == "currency":
            checks.append(
                Check(
                    "ExpectColumnValuesToBeInSet",
                    {"column": name, "value_set": list(settings.reference.currencies)},
                )
            )
    if "_line" in columns:
        checks.append(Check("ExpectColumnValuesToNotBeNull", {"column": "_record_hash"}))
    return checks


def _checked_columns(df: DataFrame, suite: Sequence[Check]) -> DataFrame:
    """``df`` with only the columns ``suite`` reads filled, the others typed nulls: the suite sees
    the same columns and values, and the driver does not receive every record's text."""
    read: set[str] = set()
    for check in suite:  # GE's column arguments: one column, a pair, or a list
        for key in ("column", "column_A", "column_B"):
            if key in check.kwargs:
                read.add(str(check.kwargs[key]))
        read.update(str(c) for c in check.kwargs.get("column_list", ()))
    return df.select(
        *[
            F.col(f.name) if f.name in read else F.lit(None).cast(f.dataType).alias(f.name)
            for f in df.schema.fields
        ]
    )


def _batches_of(tables: Tables, table: str, column: str, where: Column | None = None) -> set[str]:
    if not tables.exists(table) or column not in tables.schema(table).names:
        return set()
    df = tables.read(table)
    if where is not None:
        df = df.filter(where)
    return {r[0] for r in df.select(column).groupBy(column).count().collect() if r[0]}


def _roll_back_unrecorded(
    tables: Tables,
    targets: Sequence[tuple[str, str, Column | None]],
    recorded: Recorded,
    who: str,
) -> None:
    """Deletes the rows of batches that reached a table but not the manifest (a crashed run).

    ``targets`` are (table, batch id column, filter on the rows that belong to ``who``). A
    table still at the version a clean manifest commit left (``recorded.checked``) is not
    scanned: nothing has reached it since every batch in it was recorded.
    """
    for table, column, where in targets:
        if (
            table in recorded.checked
            and tables.exists(table)
            and tables.version(table) == recorded.checked[table]
        ):
            continue
        orphans = sorted(_batches_of(tables, table, column, where) - recorded.batches)
        if orphans:
            log.warning(
                "bronze %s: %s holds batch(es) %s with no manifest entry (a run died "
                "before its commit point); deleting them to ingest their files again",
                who,
                table,
                orphans,
            )
            listed = ", ".join(f"'{b}'" for b in orphans)
            tables.delete(table, f"{column} IN ({listed})")


def _source_targets(contract: SourceContract) -> list[tuple[str, str, Column | None]]:
    return [(contract.table, "_batch_id", None), (contract.quarantine_table, "batch_id", None)]


def _ops_targets(names: Sequence[str]) -> list[tuple[str, str, Column | None]]:
    if not names:
        return []
    of_dq = reduce(lambda a, b: a | b, [F.col("batch_id").startswith(f"{n}-") for n in names])
    return [
        (INGEST_LOG, "batch_id", F.col("source").isin(list(names))),
        (DQ_RESULTS, "batch_id", of_dq),
    ]


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
    ops: OpsRows | None = None,
    recorded: Recorded | None = None,
) -> SourceReport:
    """Ingests the new files among ``files`` of one source (see the module docstring).

    Files that fail are listed in the report's ``failed`` and recorded in the manifest; they do
    not stop the others.

    Args:
        ops: where a run collects its ``_ops`` rows to write them once (:func:`run_bronze`);
            None writes this source's at the end, manifest last, after its own roll-back check.
        recorded: the manifest as the run read it (None: read here).

    Raises:
        DataQualityError: a critical expectation failed (nothing was written to bronze).
    """
    if ops is not None:
        assert recorded is not None
        return _ingest_source(
            spark,
            tables,
            contract,
            settings,
            token_key=token_key,
            files=files,
            validator=validator,
            now=now,
            ops=ops,
            recorded=recorded,
        )
    recorded = Recorded.read(tables)
    _roll_back_unrecorded(tables, _ops_targets([contract.name]), recorded, contract.name)
    with _committed(OpsRows(), spark, tables) as own:
        return _ingest_source(
            spark,
            tables,
            contract,
            settings,
            token_key=token_key,
            files=files,
            validator=validator,
            now=now,
            ops=own,
            recorded=recorded,
        )


@contextmanager
def _committed(ops: OpsRows, spark: SparkSession, tables: Tables) -> Iterator[OpsRows]:
    """Writes ``ops`` after the block, and also when it fails: what finished is committed (a
    failed expectation's results are kept; its batch has no manifest row)."""
    try:
        yield ops
    except Exception:
        ops.write(spark, tables)
        raise
    ops.write(spark, tables)


def _ingest_source(
    spark: SparkSession,
    tables: Tables,
    contract: SourceContract,
    settings: BronzeConfig,
    *,
    token_key: bytes,
    files: Sequence[LandedFile],
    validator: Validator | None,
    now: datetime | None,
    ops: OpsRows,
    recorded: Recorded,
) -> SourceReport:
    report = SourceReport(contract.name)
    with report.timed("roll-back check"):
        _roll_back_unrecorded(tables, _source_targets(contract), recorded, contract.name)
    with report.timed("plan"):
        fresh, skipped = plan_files(files, recorded.files.get(contract.name, []))
    if not fresh and not skipped:
        return report
    now = now or datetime.now(UTC).replace(microsecond=0)
    batch_key = "\n".join(f"{f.rel_path}:{f.digest}" for f in [*fresh, *(s for s, _ in skipped)])
    batch_id = f"{contract.name}-{hashlib.sha256(batch_key.encode()).hexdigest()[:16]}"
    report.batch_id = batch_id
    report.files_skipped = len(skipped)

    manifest_rows: list[dict[str, Any]] = [
        {
            "path": f.rel_path,
            "size_bytes": f.size,
            "sha256": f.digest,
            "source": contract.name,
            "month": f.month,
            "batch_id": batch_id,
            "status": STATUS_SKIPPED,
            "duplicate_of": dup,
            "rows_read": 0,
            "rows_accepted": 0,
            "rows_quarantined": 0,
            "rows_duplicate": 0,
            "ingested_at": now,
            "reason": None,
        }
        for f, dup in skipped
    ]
    if fresh:
        _ingest_rows(
            spark,
            tables,
            contract,
            settings,
            token_key=token_key,
            files=fresh,
            batch_id=batch_id,
            now=now,
            report=report,
            manifest_rows=manifest_rows,
            validator=validator or shared_validator(),
            ops=ops,
        )
    ops.manifest.extend(manifest_rows)
    for path, reason in report.failed:
        log.error("bronze %s: file %s failed: %s", contract.name, path, reason)
    log.info(
        "bronze %s: %d file(s) ingested (%d empty), %d skipped as re-deliveries, %d failed; "
        "%d read, %d accepted, %d quarantined, %d duplicate",
        contract.name,
        report.files_ingested,
        report.files_empty,
        report.files_skipped,
        len(report.failed),
        report.rows_read,
        report.rows_accepted,
        report.rows_quarantined,
        report.rows_duplicate,
    )
    return report


class DataQualityError(JobFailed):
    """A critical expectation failed; the message names the suite and the expectations."""


def _accounting_failures(
    files: Sequence[LandedFile], covered: dict[str, int], failed: dict[str, str], *, key: bytes
) -> None:
    """Files whose non-blank lines the readers did not all account for, or that changed."""
    for f in files:
        if f.rel_path in failed:
            continue
        seen = covered.get(f.rel_path, 0)
        if f.lines >= 0 and seen != f.lines:
            failed[f.rel_path] = (
                f"the reader accounted for {seen} of the file's {f.lines} non-blank lines; "
                "the others would have been lost"
            )
            continue
        try:
            after = file_digest(f.abs_path, key)
        except OSError as exc:
            failed[f.rel_path] = (
                f"the file vanished while being ingested ({exc.strerror or type(exc).__name__})"
            )
            continue
        if after != f.digest:
            failed[f.rel_path] = (
                f"the file changed while being ingested (digest {f.digest[:12]}"
                f"... before, {after[:12]}... after); refused"
            )


def _ingest_rows(
    spark: SparkSession,
    tables: Tables,
    contract: SourceContract,
    settings: BronzeConfig,
    *,
    token_key: bytes,
    files: Sequence[LandedFile],
    batch_id: str,
    now: datetime,
    report: SourceReport,
    manifest_rows: list[dict[str, Any]],
    validator: Validator,
    ops: OpsRows,
) -> None:
    """Reads, checks and writes one batch of a source; the frames cached on the way are released
    however it ends (a check that fails included): left cached, every batch's file contents
    stayed in the session's memory (205 frames after the test world's pipeline)."""
    held: list[DataFrame] = []
    try:
        _read_check_write(
            spark,
            tables,
            contract,
            settings,
            token_key=token_key,
            files=files,
            batch_id=batch_id,
            now=now,
            report=report,
            manifest_rows=manifest_rows,
            validator=validator,
            ops=ops,
            held=held,
        )
    finally:
        for cached in reversed(held):  # the last first: releasing an input re-plans its users
            cached.unpersist()


def _read_check_write(
    spark: SparkSession,
    tables: Tables,
    contract: SourceContract,
    settings: BronzeConfig,
    *,
    token_key: bytes,
    files: Sequence[LandedFile],
    batch_id: str,
    now: datetime,
    report: SourceReport,
    manifest_rows: list[dict[str, Any]],
    validator: Validator,
    ops: OpsRows,
    held: list[DataFrame],
) -> None:
    parts: list[DataFrame] = []
    extras: list[str] = []
    failed: dict[str, str] = {}
    for f in files:
        if contract.feed_for(os.path.basename(f.rel_path)) is None:
            failed[f.rel_path] = (
                f"the file name matches no feed of {contract.name} (expected "
                f"a prefix in {[fd.prefix for fd in contract.feeds]})"
            )
    for feed in contract.feeds:
        feed_files = [
            f for f in files if os.path.basename(f.rel_path).startswith(feed.prefix) and f.size > 0
        ]
        if not feed_files:
            continue
        with report.timed("parse"):
            checked, extra = _parse_feed(
                spark, contract, feed, feed_files, settings, failed, token_key, held
            )
        extras.extend(e for e in extra if e not in extras)
        if len(contract.feeds) > 1:
            checked = checked.withColumn("feed", F.lit(feed.prefix.rstrip("_")))
        parts.append(_tokenised(checked, contract, token_key))
    if not parts:
        _record(contract, files, {}, {}, failed, batch_id, now, report, manifest_rows)
        return
    # The readers hash each record's raw text in the pass that reads the bytes (R.HASH).
    all_df = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
    all_df = all_df.persist(StorageLevel.MEMORY_AND_DISK)
    held.append(all_df)

    structural = F.coalesce(F.col(REASON_CODE) == R.STRUCTURAL, F.lit(False))
    good = F.col(REASON_CODE).isNull()
    with report.timed("count lines"):
        lines = {
            r[R.FILE]: int(r["lines"] or 0)
            for r in all_df.groupBy(R.FILE).agg(F.sum(R.SPAN).alias("lines")).collect()
        }
    _step("after_read")
    with report.timed("digests again"):
        _accounting_failures(files, lines, failed, key=token_key)
    df = all_df.filter(~structural & ~F.col(R.FILE).isin(list(failed)))
    df = _with_references(df, contract, tables, settings)

    # Exact duplicates among the accepted records: all but the first (by file and line), and any
    # already in bronze. One frame flags every record, so one aggregate counts them all.
    first = Window.partitionBy("_record_hash", good).orderBy(R.FILE, R.LINE)
    in_bronze = F.lit(False)
    if tables.exists(contract.table):
        existing_hashes = (
            tables.read(contract.table)
            .select(F.col("_record_hash").alias("_h"))
            .groupBy("_h")
            .agg(F.lit(True).alias("_in_bronze"))
        )
        df = df.join(existing_hashes, F.col("_record_hash") == F.col("_h"), how="left").drop("_h")
        in_bronze = F.coalesce(F.col("_in_bronze"), F.lit(False))
    flagged = df.withColumn(
        "_duplicate", good & ((F.row_number().over(first) > 1) | in_bronze)
    ).persist(StorageLevel.MEMORY_AND_DISK)
    held.append(flagged)

    month = F.regexp_extract(R.FILE, r"^[^/]+/([^/]+)/", 1)
    lineage = [
        F.lit(contract.name).alias("_source"),
        F.col(R.FILE).alias("_source_file"),
        F.col(R.LINE).alias("_line"),
        F.lit(now).cast("timestamp").alias("_ingested_at"),
        F.lit(batch_id).alias("_batch_id"),
        F.col("_record_hash"),
        month.alias(PARTITION),
    ]
    skip = {
        R.FILE,
        R.LINE,
        R.RAW,
        R.SPAN,
        R.PANS,
        REASON_CODE,
        REASON,
        "_record_hash",
        "_in_bronze",
        "_duplicate",
        "_known",
        "_seen",
    }
    data_cols = [c for c in df.columns if c not in skip]
    bronze_df = flagged.filter(good & ~F.col("_duplicate")).select(*data_cols, *lineage)
    if tables.exists(contract.table):  # columns evolved in by earlier files stay, as nulls
        have = set(bronze_df.columns)
        bronze_df = bronze_df.select(
            "*",
            *[
                F.lit(None).cast(f.dataType).alias(f.name)
                for f in tables.schema(contract.table).fields
                if f.name not in have
            ],
        )

    quarantine_df = flagged.filter(~good).select(
        month.alias(PARTITION),
        F.col(R.FILE).alias("source_file"),
        F.col(R.LINE).cast("int").alias("position"),
        F.col(REASON_CODE).alias("reason_code"),
        F.col(REASON).alias("reason"),
        masked_card_numbers(F.col(R.RAW)).alias("raw_text"),
        F.col("_record_hash").alias("record_hash"),
        F.lit(batch_id).alias("batch_id"),
        F.lit(now).cast("timestamp").alias("ingested_at"),
    )
    # Orphan references turn accepted records into quarantined ones: count after them.
    with report.timed("count records"):
        counts = {
            r[R.FILE]: r
            for r in flagged.groupBy(R.FILE)
            .agg(
                F.count(F.lit(1)).alias("read"),
                F.count(F.when(good, 1)).alias("accepted"),
                F.count(F.when(~good, 1)).alias("quarantined"),
                F.count(F.when(F.col("_duplicate"), 1)).alias("duplicate"),
            )
            .collect()
        }
    dups = {k: int(v["duplicate"]) for k, v in counts.items()}

    # Great Expectations on what bronze is about to receive; a critical failure writes nothing.
    suite = _expectations(contract, bronze_df.columns, settings)
    with report.timed("expectations"):
        outcome = validator.validate(
            _checked_columns(bronze_df, suite),
            contract.table,
            suite,
            # bronze_df's rows: the accepted ones but duplicates (only accepted ones are)
            rows=sum(int(c["accepted"]) - int(c["duplicate"]) for c in counts.values()),
        )
    ops.dq.extend({**r, "batch_id": batch_id} for r in outcome.rows())
    report.dq_success = outcome.success
    if not outcome.success:
        raise DataQualityError(f"{contract.name}: {outcome.failure_message()}")

    schema_mode: SchemaMode = "merge" if extras else "strict"
    _step("before_quarantine")
    # Erased people stay erased: rows naming someone on the suppression list are not written,
    # neither quarantined lines (their raw text) nor bronze rows (identifiers, the service ref);
    # someone else's row that only refers to them (a P2P sender) is written without the reference.
    with report.timed("write quarantine"):
        tables.append(
            contract.quarantine_table,
            filter_suppressed_text(
                quarantine_df, tables=tables, key=token_key, columns=QUARANTINE_TEXT
            ),
            partition_by=[PARTITION],
        )
    _step("before_bronze")
    with report.timed("write bronze"):
        kept = filter_suppressed(
            bronze_df, tables=tables, key=token_key, columns=BRONZE_IDENTIFIERS
        )
        kept = without_suppressed_references(kept, tables=tables, key=token_key, columns=REFERENCES)
        tables.append(
            contract.table,
            filter_suppressed_text(kept, tables=tables, key=token_key, columns=BRONZE_TEXT),
            partition_by=[PARTITION],
            schema_mode=schema_mode,
        )
    ops.ingest_log.extend(
        _record(contract, files, counts, dups, failed, batch_id, now, report, manifest_rows)
    )


def _record(
    contract: SourceContract,
    files: Sequence[LandedFile],
    counts: dict[str, Any],
    dups: dict[str, int],
    failed: dict[str, str],
    batch_id: str,
    now: datetime,
    report: SourceReport,
    manifest_rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The ingest log rows and manifest rows of a batch's files; fills the report."""
    log_rows = []
    for f in files:
        if f.rel_path in failed:
            report.failed.append((f.rel_path, failed[f.rel_path]))
            manifest_rows.append(
                {
                    "path": f.rel_path,
                    "size_bytes": f.size,
                    "sha256": f.digest,
                    "source": contract.name,
                    "month": f.month,
                    "batch_id": batch_id,
                    "status": STATUS_FAILED,
                    "duplicate_of": None,
                    "rows_read": 0,
                    "rows_accepted": 0,
                    "rows_quarantined": 0,
                    "rows_duplicate": 0,
                    "ingested_at": now,
                    "reason": failed[f.rel_path],
                }
            )
            continue
        c = counts.get(f.rel_path)
        read = int(c["read"]) if c else 0
        acc = int(c["accepted"]) if c else 0
        quar = int(c["quarantined"]) if c else 0
        dup = int(dups.get(f.rel_path, 0))
        empty = f.lines == 0
        if empty:
            log.warning(
                "bronze %s: %s is empty (%d bytes, no non-blank line)",
                contract.name,
                f.rel_path,
                f.size,
            )
            report.files_empty += 1
        log_rows.append(
            {
                "batch_id": batch_id,
                "source": contract.name,
                "month": f.month,
                "path": f.rel_path,
                "rows_read": read,
                "rows_accepted": acc,
                "rows_quarantined": quar,
                "rows_duplicate": dup,
                "rows_written": acc - dup,
                "reconciled": read == acc + quar,
                "ingested_at": now,
            }
        )
        manifest_rows.append(
            {
                "path": f.rel_path,
                "size_bytes": f.size,
                "sha256": f.digest,
                "source": contract.name,
                "month": f.month,
                "batch_id": batch_id,
                "status": STATUS_EMPTY if empty else STATUS_INGESTED,
                "duplicate_of": None,
                "rows_read": read,
                "rows_accepted": acc,
                "rows_quarantined": quar,
                "rows_duplicate": dup,
                "ingested_at": now,
                "reason": "the file holds no record" if empty else None,
            }
        )
        report.rows_read += read
        report.rows_accepted += acc
        report.rows_quarantined += quar
        report.rows_duplicate += dup
        report.files_ingested += 1
    report.per_file = log_rows
    return log_rows


def _referenced(sources: Sequence[str]) -> dict[str, list[str]]:
    """For each of ``sources``, the others among them that its references read."""
    return {
        name: [
            other
            for ref in CONTRACTS[name].references
            if (other := ref.table.split(".", 1)[1]) in sources and other != name
        ]
        for name in sources
    }


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
    pandas_max_rows: int | None = DEFAULT_PANDAS_MAX_ROWS,
) -> list[SourceReport]:
    """Ingests every (or the chosen) source, all months found in landing; a source after the
    sources its references read (``settings.sources_at_once`` at a time).

    Raises:
        FilesFailedError: after every source was ingested, when files failed (named, with
            their reasons, and recorded as failed in the manifest).
        DataQualityError: after the other sources, when a source's critical expectation failed.
    """
    wanted = [name for name in INGEST_ORDER if not sources or name in sources]
    checker = shared_validator(data_docs_dir=data_docs_dir, pandas_max_rows=pandas_max_rows)
    reports = []
    dq_errors: list[DataQualityError] = []
    recorded = Recorded.read(tables)
    _roll_back_unrecorded(tables, _ops_targets(wanted), recorded, ", ".join(wanted))
    try:
        with _committed(OpsRows(), spark, tables) as ops:

            def ingest(name: str) -> SourceReport | DataQualityError:
                files = discover(landing_root, name, months, key=token_key)
                try:
                    return ingest_source(
                        spark,
                        tables,
                        CONTRACTS[name],
                        settings,
                        token_key=token_key,
                        files=files,
                        validator=checker,
                        ops=ops,
                        recorded=recorded,
                    )
                except DataQualityError as exc:  # the other sources still run
                    log.error("bronze %s: %s", name, exc)
                    return exc

            # Two sources at a time (a source is a chain of small Spark jobs with driver work
            # between them); a source starts once the sources its references read are done.
            for outcome in in_parallel(
                ingest, wanted, threads=settings.sources_at_once, after=_referenced(wanted)
            ):
                if isinstance(outcome, DataQualityError):
                    dq_errors.append(outcome)
                else:
                    reports.append(outcome)
        if not dq_errors:  # a failed expectation's results have no manifest row: scan again
            checked = [t for name in wanted for t, _, _ in _source_targets(CONTRACTS[name])]
            if len(wanted) == len(INGEST_ORDER):  # the _ops tables were scanned for all sources
                checked += [t for t, _, _ in _ops_targets(wanted)]
            _record_checked(spark, tables, checked, recorded.checked)
    finally:
        if any(r.batch_id for r in reports) or not reports:
            checker.build_docs()
    failures = [f for r in reports for f in r.failed]
    if failures:
        raise FilesFailedError(failures)
    if dq_errors:
        raise DataQualityError("; ".join(str(e) for e in dq_errors))
    return reports
