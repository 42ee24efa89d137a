"""Erasure (right to be forgotten): the person out of every table, file and old version.

1. **Who.** A customer key, an e-mail or a source record id resolves, through
   ``silver.crosswalk`` and ``silver.customers``, to the person's identifiers: customer keys,
   every source record id, e-mails, phones, device ids, card tokens and wallet ids (a card
   transaction names its payer by nothing else), and national ids as silver holds them and as
   core banking typed them (bronze keeps every spelling).
2. **Rows.** Every Delta table under the lake (bronze, silver, gold, quarantine, ops) loses the
   rows in which any text column (or nested value, as JSON) holds one of them as a whole token
   (not inside a longer id). A row that names them only in a column referring to another party
   (:data:`cardlake.governance.suppression.REFERENCES`: the sender's wallet in the receiver's
   P2P record) is someone else's: it stays, with that column set to NULL. A table whose columns
   cannot hold text is not read; the others are counted in one aggregate, and only those that
   hold the person change: one commit rewriting just the files with their rows
   (:meth:`cardlake.tables.Tables.rewrite_rows`), the identifiers passed as a parameter the
   commit log does not keep (a ``DELETE`` or ``UPDATE`` would keep its predicate, values
   included).
3. **Old versions.** Each changed table is vacuumed with zero retention (the files that held
   the person are deleted, not merely unreferenced) and its log is checkpointed and cut at that
   checkpoint, so no old commit's statistics or actions name them (:func:`purge_history`).
4. **Other files.** Text files under the lake outside Delta tables (JSON logs, MLflow artefacts,
   Data Docs) have each identifier replaced by ``[erased]``; binary files that hold one are listed
   in the result as not handled (never silently left).
5. **Never again.** Keyed digests of the identifiers (keys, record ids, e-mails, phones) go to
   ``_ops.erasure_suppression`` (:mod:`cardlake.governance.suppression`), and an audit row
   without personal data to ``_ops.erasure_audit``. National ids need no digest: a source
   delivers one only inside a core-banking record, whose record id is suppressed.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import functions as F
from pyspark.sql import types as T

from cardlake.governance import suppression
from cardlake.tables.catalog import committed_tables
from cardlake.tables.layer import LAYERS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cardlake.tables import Tables

AUDIT_TABLE = "_ops.erasure_audit"
ERASED = "[erased]"
# Tables erasure writes to itself: their rows hold digests, never identifiers.
OWN_TABLES = (suppression.SUPPRESSION_TABLE, AUDIT_TABLE)
MIN_TOKEN_CHARS = 4  # shorter identifiers would match inside unrelated text
PATTERN = "pattern"  # the parameter the table tests read the identifiers' pattern from
AUDIT_SCHEMA = T.StructType(
    [
        T.StructField("request_id", T.StringType(), False),
        T.StructField("requested_by", T.StringType(), False),
        T.StructField("erased_at", T.TimestampType(), False),
        T.StructField("subject_digest", T.StringType(), False),
        T.StructField("tables_changed", T.ArrayType(T.StringType()), False),
        T.StructField("rows_removed", T.LongType(), False),
        T.StructField("files_redacted", T.IntegerType(), False),
        T.StructField("files_not_handled", T.IntegerType(), False),
        # Last: an audit table from before it gains the column on the next erasure (schema merge).
        T.StructField("references_removed", T.LongType(), True),
    ]
)


class ErasureError(RuntimeError):
    """The request names nobody the lake knows, or something could not be erased."""


@dataclass(frozen=True)
class ErasureRequest:
    customer_key: str | None = None
    email: str | None = None
    source_record_id: str | None = None

    def __post_init__(self) -> None:
        if not (self.customer_key or self.email or self.source_record_id):
            raise ErasureError("an erasure needs a customer key, an e-mail or a source record id")


@dataclass(frozen=True)
class Person:
    """The identifiers of one person, as found in the lake."""

    customer_keys: frozenset[str]
    record_ids: frozenset[str]
    emails: frozenset[str]
    other: frozenset[str] = frozenset()  # device ids
    phones: frozenset[str] = frozenset()
    instruments: frozenset[str] = frozenset()  # card tokens and wallet ids
    national_ids: frozenset[str] = frozenset()  # canonical and every delivered spelling

    def tokens(self) -> list[str]:
        values = (
            self.customer_keys
            | self.record_ids
            | self.emails
            | self.other
            | self.phones
            | self.instruments
            | self.national_ids
        )
        return sorted(v for v in values if len(v) >= MIN_TOKEN_CHARS)

    def suppression_pairs(self) -> list[tuple[str, str]]:
        return (
            [("customer_key", k) for k in sorted(self.customer_keys)]
            + [("record", r) for r in sorted(self.record_ids)]
            + [("email", e) for e in sorted(self.emails)]
            + [("phone", p) for p in sorted(self.phones)]
            + [("instrument", i) for i in sorted(self.instruments)]
        )


@dataclass
class ErasureResult:
    request_id: str
    tables_changed: list[str] = field(default_factory=list)
    rows_removed: int = 0
    references_removed: int = 0  # rows kept, someone else's, with the reference to them nulled
    files_redacted: list[str] = field(default_factory=list)
    files_not_handled: list[str] = field(default_factory=list)


def _values(df: DataFrame, column: str) -> set[str]:
    # One person's rows: a handful, safe to collect.
    return {
        str(r[0]).strip()
        for r in df.select(column).where(F.col(column).isNotNull()).collect()
        if str(r[0]).strip()
    }


def find_person(tables: Tables, request: ErasureRequest) -> Person:
    """Resolves the request to every identifier the lake holds for that person."""
    keys = {request.customer_key} if request.customer_key else set()
    emails = {request.email.strip().lower()} if request.email else set()
    records = {request.source_record_id} if request.source_record_id else set()
    person_tables = [
        t for t in ("silver.customers", "silver.customer_snapshots") if tables.exists(t)
    ]
    if request.email:
        for name in person_tables:
            keys |= _values(
                tables.read(name).where(
                    F.lower(F.trim("email")) == F.lit(request.email.strip().lower())
                ),
                "customer_key",
            )
    crosswalk = tables.read("silver.crosswalk") if tables.exists("silver.crosswalk") else None
    if crosswalk is not None and request.source_record_id:
        keys |= _values(
            crosswalk.where(F.col("source_record_id") == request.source_record_id), "customer_key"
        )
    if crosswalk is not None and keys:
        records |= _values(
            crosswalk.where(F.col("customer_key").isin(sorted(keys))), "source_record_id"
        )
    other: set[str] = set()
    phones: set[str] = set()
    national: set[str] = set()
    for name in person_tables:
        rows = tables.read(name).where(F.col("customer_key").isin(sorted(keys))) if keys else None
        if rows is None:
            continue
        emails |= {e.lower() for e in _values(rows, "email")}
        phones |= _values(rows, "phone")
        other |= _values(rows, "device_id")
        if "national_id" in rows.columns:  # a silver table from before national ids has none
            national |= _values(rows, "national_id")
        # silver.customers.crm_ids: the person's CRM record ids, comma-separated
        records |= {
            v for r in rows.select("crm_ids").collect() if r[0] for v in str(r[0]).split(",") if v
        }
    if not (keys or records):
        if not emails:
            raise ErasureError("nobody in the lake matches the request")
    return Person(
        frozenset(keys),
        frozenset(records),
        frozenset(emails),
        frozenset(other),
        frozenset(phones),
        frozenset(_instruments(tables, keys, records)),
        frozenset(national | _delivered_national_ids(tables, records)),
    )


def _delivered_national_ids(tables: Tables, records: set[str]) -> set[str]:
    # Core banking's national ids as typed (spaced, lower-case, compact; a wrong check letter
    # too, which silver left out): a copy of one may sit in text with no other identifier.
    if not records or not tables.exists("bronze.financial_records"):
        return set()
    fin = tables.read("bronze.financial_records")
    holder = fin.schema["holder"].dataType if "holder" in fin.columns else None
    if not (isinstance(holder, T.StructType) and "national_id" in holder.fieldNames()):
        return set()
    return _values(
        fin.where(F.col("fin_id").isin(sorted(records))).select(
            F.col("holder.national_id").alias("national_id")
        ),
        "national_id",
    )


def _instruments(tables: Tables, keys: set[str], records: set[str]) -> set[str]:
    # A card transaction names its payer only by card token or wallet id: found through the
    # person's cards (silver) and their source records (the bank's cards, the CRM's wallet).
    found: set[str] = set()
    if keys and tables.exists("silver.cards"):
        found |= _values(
            tables.read("silver.cards").where(F.col("customer_key").isin(sorted(keys))), "card_id"
        )
    if not records:
        return found
    ids = sorted(records)
    if tables.exists("bronze.financial_records"):
        fin = tables.read("bronze.financial_records")
        if "cards" in fin.columns:
            found |= _values(
                fin.where(F.col("fin_id").isin(ids)).select(
                    F.explode("cards.card_token").alias("card_token")
                ),
                "card_token",
            )
    if tables.exists("bronze.crm_customers"):
        crm = tables.read("bronze.crm_customers")
        if "wallet_id" in crm.columns:
            found |= _values(crm.where(F.col("crm_id").isin(ids)), "wallet_id")
    return found


def _literal(token: str) -> str:
    # Each symbol as a one-character class: the same text in Java (Spark), RE2 (Arrow) and re.
    return "".join(c if c.isalnum() else (f"[\\{c}]" if c in "]\\^-" else f"[{c}]") for c in token)


def _token_pattern(tokens: Iterable[str]) -> str:
    # A whole token: not preceded or followed by a letter or digit (CK1 is not inside CK10).
    alternatives = "|".join(_literal(t) for t in tokens)
    return f"(?i)(^|[^A-Za-z0-9])({alternatives})([^A-Za-z0-9]|$)"


def _has_text(data_type: T.DataType) -> bool:
    # A nested value holds text if a string is anywhere in it (a map's keys included).
    if isinstance(data_type, T.StringType):
        return True
    if isinstance(data_type, T.ArrayType):
        return _has_text(data_type.elementType)
    if isinstance(data_type, T.MapType):
        return _has_text(data_type.keyType) or _has_text(data_type.valueType)
    if isinstance(data_type, T.StructType):
        return any(_has_text(f.dataType) for f in data_type.fields)
    return False


def _quoted(name: str) -> str:
    return "t.`" + name.replace("`", "``") + "`"


def _holds(f: T.StructField) -> str | None:
    """SQL true where the column holds a token of ``p.pattern``: text by its value, a nested
    value as JSON; None for a column without text (numbers, dates cannot hold an identifier)."""
    column = _quoted(f.name)
    if isinstance(f.dataType, T.StringType):
        return f"coalesce({column} RLIKE p.{PATTERN}, false)"
    if _has_text(f.dataType):
        return f"coalesce(to_json({column}) RLIKE p.{PATTERN}, false)"
    return None


@dataclass(frozen=True)
class _Tests:
    """Where a table can hold the person, as SQL over ``t.<column>`` and ``p.pattern``."""

    own: str | None  # the row is theirs: a column other than a reference holds them
    references: dict[str, str]  # reference column to: it names them

    @classmethod
    def of(cls, schema: T.StructType) -> _Tests:
        references = {
            f.name: test
            for f in schema.fields
            if f.name in suppression.REFERENCES
            for test in [_holds(f)]
            if test is not None
        }
        own = [
            test
            for f in schema.fields
            if f.name not in references
            for test in [_holds(f)]
            if test is not None
        ]
        return cls(" OR ".join(own) or None, references)

    @property
    def refers(self) -> str | None:
        return " OR ".join(self.references.values()) or None


def _census(df: DataFrame, tests: _Tests, pattern: str) -> tuple[int, int]:
    # One aggregate: the rows that are the person's, and the others' rows naming them.
    bound = df.alias("t").select("*", F.struct(F.lit(pattern).alias(PATTERN)).alias("p"))
    own = F.expr(tests.own) if tests.own else F.lit(False)
    refers = F.expr(tests.refers) if tests.refers else F.lit(False)
    [(removed, unreferenced)] = bound.agg(F.count_if(own), F.count_if(~own & refers)).collect()
    return int(removed), int(unreferenced)


def lake_tables(lake_root: str, *, spark: SparkSession | None = None) -> list[str]:
    """Every Delta table of the lake, as ``layer.table`` (``spark`` lists an object store)."""
    return [
        f"{layer}.{name}" for layer, name, _ in committed_tables(lake_root, LAYERS, spark=spark)
    ]


def purge_history(path: str) -> int:
    """Deletes every file the latest version does not reference (a vacuum with zero retention),
    checkpoints the table and deletes every log entry before it; returns log entries deleted.

    Old commits keep the removed files' statistics (min/max values) and their paths; after this,
    the table has no version before its latest, so nothing can travel back to the person. The
    vacuum is delta-rs's, in-process, with ``full=True`` (files no log entry names either):
    delta-spark's took ~44 s a table on a loaded two-core machine, most of it a listing job of
    Spark's default 10,000 tasks (the local profiles now cap it at 8: ~3 s, ``cardlake.spark``).
    """
    from deltalake import DeltaTable

    DeltaTable(path).vacuum(
        retention_hours=0, dry_run=False, enforce_retention_duration=False, full=True
    )
    table = DeltaTable(path)  # the vacuum may have committed its start and end
    table.create_checkpoint()
    version = table.version()
    log = Path(path) / "_delta_log"
    removed = 0
    for entry in log.iterdir():
        match = re.match(r"^(\d{20})\.", entry.name)
        if entry.is_file() and match and int(match.group(1)) < version:
            entry.unlink()
            removed += 1
    return removed


def _drop_parquet_rows(path: Path, pattern: str) -> bool:
    # Parquet outside Delta tables (MLflow artefacts, exports): rewrite it without the rows.
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    hit = pa.array([False] * table.num_rows)
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            found = pc.fill_null(pc.match_substring_regex(column, pattern, ignore_case=True), False)
            hit = pc.or_(hit, found)
    if not pc.any(hit).as_py():
        return False
    pq.write_table(table.filter(pc.invert(hit)), path)
    return True


def _redact_files(lake_root: str, tokens: list[str], result: ErasureResult) -> None:
    table_dirs = {Path(lake_root, *t.split(".")) for t in lake_tables(lake_root)}
    pattern = re.compile(_token_pattern(tokens).replace("(?i)", ""), re.IGNORECASE)
    needles = [t.lower().encode() for t in tokens]
    for folder, dirs, files in os.walk(lake_root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d not in table_dirs]
        for name in files:
            path = here / name
            if path.suffix == ".parquet":  # compressed: read its values, not its bytes
                if _drop_parquet_rows(path, pattern.pattern):
                    result.files_redacted.append(str(path.relative_to(lake_root)))
                continue
            data = path.read_bytes()
            folded = data.lower()
            if not any(n in folded for n in needles):
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                result.files_not_handled.append(str(path.relative_to(lake_root)))
                continue
            redacted = pattern.sub(lambda m: f"{m.group(1)}{ERASED}{m.group(3)}", text)
            if redacted != text:
                path.write_text(redacted, encoding="utf-8")
                result.files_redacted.append(str(path.relative_to(lake_root)))


def erase(
    tables: Tables, request: ErasureRequest, *, key: bytes, requested_by: str = "erase_person"
) -> ErasureResult:
    """Erases one person from the whole lake (see the module's docstring).

    Args:
        tables: the lake.
        request: who to erase.
        key: the token key; the suppression list and the audit keep digests made with it.
        requested_by: who asked (a role or ticket id, never the person).

    Returns:
        What changed, without personal data: table names, counts, file paths.
    """
    person = find_person(tables, request)
    tokens = person.tokens()
    result = ErasureResult(request_id=str(uuid.uuid4()))
    pattern = _token_pattern(tokens)
    for name in lake_tables(tables.lake_root, spark=tables.spark):
        if name in OWN_TABLES:
            continue
        df = tables.read(name)
        tests = _Tests.of(df.schema)
        if not (tests.own or tests.refers):
            continue  # no column can hold an identifier: nothing to read
        removed, unreferenced = _census(df, tests, pattern)
        if removed == 0 and unreferenced == 0:
            continue
        tables.rewrite_rows(
            name,
            delete_where=tests.own,
            update_where=tests.refers if unreferenced else None,
            assignments={
                column: f"CASE WHEN {test} THEN NULL ELSE {_quoted(column)} END"
                for column, test in tests.references.items()
            }
            if unreferenced
            else None,
            parameters={PATTERN: pattern},
        )
        purge_history(tables.path(name))
        result.tables_changed.append(name)
        result.rows_removed += removed
        result.references_removed += unreferenced
    _redact_files(tables.lake_root, tokens, result)
    if not (result.tables_changed or result.files_redacted or result.files_not_handled):
        raise ErasureError("nobody in the lake matches the request; nothing changed")
    _record(tables, person, result, key=key, requested_by=requested_by)
    return result


def _record(
    tables: Tables, person: Person, result: ErasureResult, *, key: bytes, requested_by: str
) -> None:
    spark = tables.spark
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [
        (kind, d, result.request_id, now)
        for kind, value in person.suppression_pairs()
        for d in [suppression.digest(kind, value, key)]
    ]
    if rows:
        tables.append(
            suppression.SUPPRESSION_TABLE, spark.createDataFrame(rows, suppression.SCHEMA)
        )
    subject = suppression.digest(
        "customer_key",
        ",".join(sorted(person.customer_keys)) or ",".join(sorted(person.emails)),
        key,
    )
    audit = [
        (
            result.request_id,
            requested_by,
            now,
            subject,
            sorted(result.tables_changed),
            result.rows_removed,
            len(result.files_redacted),
            len(result.files_not_handled),
            result.references_removed,
        )
    ]
    tables.append(AUDIT_TABLE, spark.createDataFrame(audit, AUDIT_SCHEMA), schema_mode="merge")
