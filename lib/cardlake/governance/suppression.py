"""The erasure suppression list: keyed digests of erased people's identifiers.

``_ops.erasure_suppression`` holds ``(kind, digest, request_id, erased_at)``, where ``digest`` is
HMAC-SHA256 under the token key of ``kind:normalised value`` (kinds: ``customer_key``,
``record`` for a source record id, ``email``, ``phone``, ``instrument`` for a card token or
wallet id). Nothing in it reads back to a person
without the key. Bronze drops suppressed rows before they land (:func:`filter_suppressed` on
identifier columns, :func:`filter_suppressed_text` on free text: a quarantined line's raw text,
the service log's ``ref``), so a re-delivered file or next month's run does not bring an erased
person back. A column that only refers to another party (:data:`REFERENCES`) is nulled instead,
its row kept: the row is someone else's (:func:`without_suppressed_references`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import reduce
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql import types as T

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from cardlake.tables import Tables

SUPPRESSION_TABLE = "_ops.erasure_suppression"
KINDS = ("customer_key", "record", "email", "phone", "instrument")
# Bronze columns that identify a person, and the kind of digest they are checked against.
BRONZE_IDENTIFIERS: Mapping[str, str] = {
    "crm_id": "record",
    "fin_id": "record",
    "demo_id": "record",
    "app_user_id": "record",
    "contact_id": "record",
    "email": "email",
    "card_token": "instrument",
    "wallet_id": "instrument",
}
# Columns that only refer to another party, by name in every layer, and their digest kind: the
# sender's wallet in the receiver's P2P record. The record is the other party's, so an erased
# person named there loses the reference (the value nulled), never the record: erasure nulls it
# in every table, bronze in a re-delivered row (:func:`without_suppressed_references`).
REFERENCES: Mapping[str, str] = {"counterparty_wallet": "instrument"}
# Bronze and quarantine text that may name a person inside it: each token is checked as a record
# id, a card token or wallet id and an e-mail, the whole value as a phone (the service log's ref
# is a record id, an e-mail or a phone).
BRONZE_TEXT = ("ref",)
QUARANTINE_TEXT = ("raw_text",)
# A record id or an e-mail inside free text (CRM-1000001, FIN10000000, a.b+x@mail.test).
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+@-]*[A-Za-z0-9]")
_PHONE = re.compile(r"\+?[\d ()-]{7,}")
SCHEMA = T.StructType(
    [
        T.StructField("kind", T.StringType(), False),
        T.StructField("digest", T.StringType(), False),
        T.StructField("request_id", T.StringType(), False),
        T.StructField("erased_at", T.TimestampType(), False),
    ]
)


def normalised(kind: str, value: str) -> str:
    """The form digested: e-mails case-folded, every identifier trimmed."""
    value = value.strip()
    if kind == "phone":  # E.164 however spaced: "+44 7700 900777" and "0044 7700900777" agree
        digits = re.sub(r"\D", "", value)
        return "+" + digits.removeprefix("00") if value.startswith(("+", "00")) else digits
    return value.lower() if kind == "email" else value


def digest(kind: str, value: str, key: bytes) -> str:
    """HMAC-SHA256 hex of ``kind:normalised value`` under ``key``."""
    if kind not in KINDS:
        raise ValueError(f"suppression kind {kind!r} not in {KINDS}")
    message = f"{kind}:{normalised(kind, value)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def digests(pairs: Iterable[tuple[str, str]], key: bytes) -> set[str]:
    return {digest(kind, value, key) for kind, value in pairs if value and value.strip()}


def digest_column(col: Column, kind: str, key: bytes) -> Column:
    """The digest of each value of ``col`` (NULL stays NULL). The key stays in the closure."""

    @F.pandas_udf(T.StringType())  # type: ignore[call-overload]
    def _digest(values: pd.Series) -> pd.Series:
        return values.map(lambda v: None if v is None or pd.isna(v) else digest(kind, str(v), key))

    return _digest(col)


def suppressed_digests(tables: Tables) -> DataFrame | None:
    """The digests on the list, or None when nobody was ever erased."""
    if not tables.exists(SUPPRESSION_TABLE):
        return None
    return tables.read(SUPPRESSION_TABLE).select("digest")


def filter_suppressed(
    df: DataFrame, *, tables: Tables, columns: Mapping[str, str], key: bytes
) -> DataFrame:
    """``df`` without the rows whose identifiers are on the suppression list.

    Args:
        df: incoming rows (bronze, before they are written).
        tables: the lake, where ``_ops.erasure_suppression`` lives.
        columns: column name to kind, e.g. ``{"crm_id": "record", "email": "email"}``; columns
            absent from ``df`` are skipped.
        key: the token key the digests were made with.
    """
    listed = suppressed_digests(tables)
    present = {c: k for c, k in columns.items() if c in df.columns}
    if listed is None or not present:
        return df
    listed = listed.withColumnRenamed("digest", "_suppressed")
    out = df
    for name, kind in present.items():
        marker = f"_digest_{name}"
        out = (
            out.withColumn(marker, digest_column(F.col(name), kind, key))
            .join(F.broadcast(listed), F.col(marker) == F.col("_suppressed"), how="left_anti")
            .drop(marker)
        )
    return out.select(*df.columns)


def without_suppressed_references(
    df: DataFrame, *, tables: Tables, columns: Mapping[str, str], key: bytes
) -> DataFrame:
    """``df`` with each reference to someone on the suppression list set to NULL, rows kept.

    Args:
        df: incoming rows (bronze, before they are written).
        tables: the lake, where ``_ops.erasure_suppression`` lives.
        columns: reference column name to kind (:data:`REFERENCES`); columns absent from ``df``
            are skipped.
        key: the token key the digests were made with.
    """
    listed = suppressed_digests(tables)
    present = {c: k for c, k in columns.items() if c in df.columns}
    if listed is None or not present:
        return df
    # A set: two requests may list the same digest, and a left join must not repeat the row.
    listed = listed.groupBy(F.col("digest").alias("_listed")).agg(F.lit(True).alias("_suppressed"))
    out = df
    for name, kind in present.items():
        marker = f"_digest_{name}"
        out = (
            out.withColumn(marker, digest_column(F.col(name), kind, key))
            .join(F.broadcast(listed), F.col(marker) == F.col("_listed"), how="left")
            .withColumn(
                name,
                F.when(F.col("_suppressed"), F.lit(None).cast(df.schema[name].dataType)).otherwise(
                    F.col(name)
                ),
            )
            .drop(marker, "_listed", "_suppressed")
        )
    return out.select(*df.columns)


def names_listed(text: str, listed: frozenset[str], key: bytes) -> bool:
    """True when a token of ``text`` is a listed record id, instrument or e-mail, or ``text`` a
    listed phone."""
    found = {digest("phone", text, key)} if _PHONE.fullmatch(text.strip()) else set()
    for token in _TOKEN.findall(text):
        found.add(digest("record", token, key))
        found.add(digest("instrument", token, key))
        if "@" in token:
            found.add(digest("email", token, key))
    return not found.isdisjoint(listed)


def filter_suppressed_text(
    df: DataFrame, *, tables: Tables, columns: Sequence[str], key: bytes
) -> DataFrame:
    """``df`` without the rows whose text ``columns`` name someone on the suppression list.

    For text no parser split into identifier columns: a quarantined line (``raw_text``), the
    service log's ``ref`` (a CRM id, an e-mail or a phone). Columns absent from ``df`` are
    skipped.
    """
    listed_df = suppressed_digests(tables)
    present = [c for c in columns if c in df.columns]
    if listed_df is None or not present:
        return df
    # A few digests per erasure request: small enough to ship to the workers with the function.
    listed = frozenset(r[0] for r in listed_df.collect())

    @F.pandas_udf(T.BooleanType())  # type: ignore[call-overload]
    def _names(values: pd.Series) -> pd.Series:
        return values.map(
            lambda v: v is not None and not pd.isna(v) and names_listed(str(v), listed, key)
        )

    named = reduce(
        lambda a, b: a | b, [F.coalesce(_names(F.col(c)), F.lit(False)) for c in present]
    )
    return df.where(~named)
