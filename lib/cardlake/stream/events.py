"""The card event contract: explicit schema, parsing, and the reason a message is rejected.

A message is one JSON object (:mod:`cardlake.synth.stream` writes them). Parsing never fails
the stream: every message comes out either well-formed (all required fields present and of
their type) or with a ``reason`` naming the first field that is wrong, for the quarantine.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

S, DBL = StringType(), DoubleType()

EVENT_SCHEMA = StructType(
    [
        StructField("event_id", S),
        StructField("event_time", S),  # ISO-8601 instant; parsed below so a bad one is named
        StructField("sent_ms", LongType()),
        StructField("transaction_id", S),
        StructField("instrument_type", S),
        StructField("instrument_id", S),  # a card token (tok_...) or a wallet id, never a number
        StructField("amount", DBL),
        StructField("currency", S),
        StructField("merchant_id", S),
        StructField("mcc", S),
        StructField("merchant_country", S),
        StructField("channel", S),
        StructField("direction", S),
        StructField("state", S),
        StructField("device_id", S),
        StructField("ip_country", S),
    ]
)
REQUIRED = ("event_id", "event_time", "transaction_id", "instrument_id", "amount", "currency")
# 13 to 19 digits (single spaces or dashes allowed between them), not part of a longer word or
# id (``EV-202506-00000049``, ``TX2025...``), is treated as a card number in raw text.
_PAN_IN_TEXT = r"(?<![\w-])(?:\d[ -]?){9,15}(\d{4})(?![\w-])"

QUARANTINE_COLUMNS = (
    "event_id",
    "reason",
    "raw_value",
    "source",
    "broker_time",
    "quarantined_at",
    "month",
)


def masked(col: Column) -> Column:
    """Raw text with anything that looks like a card number cut to its last four digits."""
    return F.regexp_replace(col, _PAN_IN_TEXT, "************$1")


def with_parsed_events(raw_df: DataFrame) -> DataFrame:
    """Parses ``value`` (the message text) into the event columns plus ``reason``.

    ``reason`` is null for a well-formed event, else ``not a JSON object``, ``missing <field>``
    or ``invalid <field>`` (present but not of its type) for the first required field at fault.
    The input keeps its other columns (``broker_time``, ``source``).
    """
    parsed = F.from_json(F.col("value"), EVENT_SCHEMA, {"mode": "PERMISSIVE"})
    is_object = F.coalesce(F.trim(F.col("value")).startswith("{"), F.lit(False)) & (
        F.try_parse_json(F.col("value")).isNotNull()
    )
    df = raw_df.withColumn("_e", parsed).withColumn("_is_object", is_object)
    event_time = F.try_to_timestamp(F.col("_e.event_time"))
    checks: list[tuple[Column, str]] = [(~F.col("_is_object"), "not a JSON object")]
    for name in REQUIRED:
        value = event_time if name == "event_time" else F.col(f"_e.{name}")
        # Only a field that did not parse is looked for in the raw text (missing, or present
        # but not of its type): the look-up parses the message again, and ``and`` stops at a
        # parsed value, so a well-formed message is parsed twice in all instead of eight times.
        raw_absent = F.get_json_object(F.col("value"), f"$.{name}").isNull()
        checks.append((value.isNull() & raw_absent, f"missing {name}"))
        checks.append((value.isNull(), f"invalid {name}"))
    reason: Column = F.lit(None).cast("string")
    for failed, text in reversed(checks):
        reason = F.when(failed, F.lit(text)).otherwise(reason)
    fields = [
        F.col(f"_e.{f.name}").alias(f.name) for f in EVENT_SCHEMA.fields if f.name != "event_time"
    ]
    keep = [c for c in raw_df.columns if c != "value"]
    return df.select(
        *keep, "value", *fields, event_time.alias("event_time"), reason.alias("reason")
    )


def quarantine_rows(parsed_df: DataFrame) -> DataFrame:
    """The rejected messages as quarantine rows: reason, masked raw text, where it came from."""
    now = F.current_timestamp()
    return parsed_df.where(F.col("reason").isNotNull()).select(
        "event_id",
        "reason",
        masked(F.col("value")).alias("raw_value"),
        "source",
        "broker_time",
        now.alias("quarantined_at"),
        F.date_format(now, "yyyy-MM").alias("month"),
    )
