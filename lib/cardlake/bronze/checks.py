"""Safe casts and the per-record contract checks: each record gets a reason, or none.

Checks run in order and the first failure is the record's reason: the parse error, then per
field its type (``unparseable_date``, ``bad_number``...), required presence and value rules
(``negative_amount``, ``absurd_amount``, ``unknown_currency``, ``unknown_country``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cardlake.bronze.contracts import DATE_FMT, Field, ReferenceConfig
from cardlake.bronze.readers import ERROR, ERROR_CODE, FILE, LINE, RAW

REASON_CODE, REASON = "_reason_code", "_reason"
_MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
_CAST = {
    "int": "int",
    "long": "bigint",
    "double": "double",
    "decimal": "decimal(18,2)",
    "boolean": "boolean",
}


def _text(col: Column) -> Column:
    # Empty text is a missing value (the landing contract); nothing else is rewritten.
    return F.when(F.col(col) != "", F.col(col)) if isinstance(col, str) else col


def typed(f: Field) -> tuple[Column, Column | None]:
    """The field's typed value and the condition under which its text did not cast."""
    text = F.when(F.col(f.name) != "", F.col(f.name))
    if f.kind == "string":
        return text, None
    if f.kind in ("date", "timestamp"):
        ts = F.try_to_timestamp(text, F.lit(f.fmt or DATE_FMT))
        value = ts.cast("date") if f.kind == "date" else ts
        return value, text.isNotNull() & ts.isNull()
    if f.kind == "month":
        return text, text.isNotNull() & ~text.rlike(_MONTH)
    value = text.try_cast(_CAST[f.kind])
    return value, text.isNotNull() & value.isNull()


def _type_code(f: Field) -> str:
    if f.kind in ("date", "timestamp", "month"):
        return "unparseable_date"
    return "bad_boolean" if f.kind == "boolean" else "bad_number"


def with_checks(
    df: DataFrame,
    *,
    fields: Sequence[Field],
    reference: ReferenceConfig,
    extra_checks: Sequence[tuple[Column, str, Column]] = (),
) -> DataFrame:
    """Types ``fields`` safely and adds ``_reason_code``/``_reason`` (null: the record is good).

    Args:
        df: a reader's output (text fields plus ``_error_code``/``_error``).
        fields: the contract's flat fields.
        reference: valid currencies, countries and the amount ceiling.
        extra_checks: (failed condition, code, message) for nested documents.
    """
    rules: list[tuple[Column, str, Column]] = [(F.col(ERROR_CODE).isNotNull(), "", F.col(ERROR))]
    typed_cols: dict[str, Column] = {}
    for f in fields:
        value, bad_type = typed(f)
        typed_cols[f.name] = value
        shown = F.coalesce(F.col(f.name), F.lit(""))
        if bad_type is not None:
            rules.append(
                (
                    bad_type,
                    _type_code(f),
                    F.format_string(
                        "%s: %s is not a valid %s", F.lit(f.name), shown, F.lit(f.kind)
                    ),
                )
            )
        if f.required:
            rules.append(
                (value.isNull(), "missing_required", F.lit(f"{f.name}: required value is missing"))
            )
        if f.check == "amount":
            rules.append(
                (
                    value <= 0,
                    "negative_amount",
                    F.format_string("%s: %s is not positive", F.lit(f.name), shown),
                )
            )
            rules.append(
                (
                    value > reference.max_amount,
                    "absurd_amount",
                    F.format_string(
                        "%s: %s exceeds %s", F.lit(f.name), shown, F.lit(str(reference.max_amount))
                    ),
                )
            )
        elif f.check == "non_negative":
            rules.append(
                (
                    value < 0,
                    "negative_amount",
                    F.format_string("%s: %s is negative", F.lit(f.name), shown),
                )
            )
        elif f.check == "positive":
            rules.append(
                (
                    value <= 0,
                    "out_of_range",
                    F.format_string("%s: %s is not positive", F.lit(f.name), shown),
                )
            )
        elif f.check == "currency":
            rules.append(
                (
                    value.isNotNull() & ~value.isin(list(reference.currencies)),
                    "unknown_currency",
                    F.format_string("%s: %s is not a known currency", F.lit(f.name), shown),
                )
            )
        elif f.check == "country":
            rules.append(
                (
                    value.isNotNull() & ~value.isin(list(reference.countries)),
                    "unknown_country",
                    F.format_string("%s: %s is not a known country code", F.lit(f.name), shown),
                )
            )
    rules.extend(extra_checks)
    code = F.coalesce(
        *[
            F.when(F.coalesce(cond, F.lit(False)), F.col(ERROR_CODE) if not c else F.lit(c))
            for cond, c, _ in rules
        ]
    )
    message = F.coalesce(*[F.when(F.coalesce(cond, F.lit(False)), msg) for cond, _, msg in rules])
    others = [c for c in df.columns if c not in typed_cols and c not in (ERROR_CODE, ERROR)]
    return df.select(
        *[F.col(c) for c in others],
        *[v.alias(n) for n, v in typed_cols.items()],
        code.alias(REASON_CODE),
        message.alias(REASON),
    )


def nested_date_check(path: str, label: str, fmt: str = DATE_FMT) -> tuple[Column, str, Column]:
    text = F.col(path)
    bad = text.isNotNull() & (text != "") & F.try_to_timestamp(text, F.lit(fmt)).isNull()
    return (
        bad,
        "unparseable_date",
        F.format_string("%s: %s is not a valid date", F.lit(label), F.coalesce(text, F.lit(""))),
    )


def nested_set_check(
    array_path: str | None, path: str, allowed: Sequence[str], code: str, label: str
) -> tuple[Column, str, Column]:
    """A value (or any value of an array of structs) outside ``allowed``."""
    if array_path is None:
        value = F.col(path)
        bad = value.isNotNull() & ~value.isin(list(allowed))
        return (
            bad,
            code,
            F.format_string("%s: %s is not allowed", F.lit(label), F.coalesce(value, F.lit(""))),
        )
    allowed_lit = F.array(*[F.lit(a) for a in allowed])
    bad = F.exists(
        F.col(array_path), lambda x: x[path].isNotNull() & ~F.array_contains(allowed_lit, x[path])
    )
    return bad, code, F.lit(f"{label}: a value is not allowed")


__all__ = [
    "FILE",
    "LINE",
    "RAW",
    "REASON",
    "REASON_CODE",
    "nested_date_check",
    "nested_set_check",
    "typed",
    "with_checks",
]
