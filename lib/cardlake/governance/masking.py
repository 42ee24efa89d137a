"""Masks as Spark SQL expressions: what the ``analyst`` role sees of a classified column.

The expressions go into the masked views the SQL server publishes (a view is SQL text), so
they are built as SQL strings over a quoted column name; each keeps NULL as NULL.
"""

from __future__ import annotations

from pyspark.sql.types import DataType, DateType, StringType, TimestampNTZType, TimestampType

from cardlake.governance.settings import Mask

REDACTED = "[redacted]"
PHONE_DIGITS_SHOWN = 4
LAST_CHARS_SHOWN = 2  # of an identifier such as a national id


def quote(name: str) -> str:
    """A SQL identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


def mask_sql(column: str, mask: Mask | None, data_type: DataType) -> str:
    """The SQL expression of ``column`` masked by ``mask``, named ``column``.

    ``None`` (an unclassified column) shows NULL: unknown data is treated as personal.
    """
    c = quote(column)
    is_text = isinstance(data_type, StringType)
    if mask == "keep":
        expression = c
    elif mask == "initials" and is_text:
        expression = (
            f"CASE WHEN {c} IS NULL THEN NULL ELSE concat_ws(' ', transform("
            f"filter(split(trim({c}), '[ \\\\t]+'), w -> w != ''), "
            f"w -> concat(upper(left(w, 1)), '.'))) END"
        )
    elif mask == "email" and is_text:
        expression = (
            f"CASE WHEN {c} IS NULL THEN NULL WHEN instr({c}, '@') < 2 THEN '{REDACTED}' "
            f"ELSE concat(left({c}, 1), '***@', substring_index({c}, '@', -1)) END"
        )
    elif mask == "phone" and is_text:
        expression = (
            f"CASE WHEN {c} IS NULL THEN NULL ELSE concat('***', "
            f"right(regexp_replace({c}, '[^0-9]', ''), {PHONE_DIGITS_SHOWN})) END"
        )
    elif mask == "last_two" and is_text:
        expression = (
            f"CASE WHEN {c} IS NULL THEN NULL ELSE concat('***', "
            f"right(regexp_replace({c}, '[^0-9A-Za-z]', ''), {LAST_CHARS_SHOWN})) END"
        )
    elif mask == "year" and isinstance(data_type, DateType | TimestampType | TimestampNTZType):
        expression = f"year({c})"
    elif mask == "redact" and is_text:
        expression = f"CASE WHEN {c} IS NULL THEN NULL ELSE '{REDACTED}' END"
    else:  # nullify, unclassified, or a text mask on a column that is not text
        expression = f"CAST(NULL AS {data_type.simpleString()})"
    return f"{expression} AS {c}"
