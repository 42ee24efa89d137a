"""Bad records: which defects each source can carry and how a record is broken.

Semantic defects (a bad date, amount, currency, country or reference) change a field before
the record is serialised; syntactic defects (malformed CSV, invalid JSON, broken XML, a
malformed log line) break the serialised text so a standard parser rejects it.
"""

from __future__ import annotations

import random
from typing import Any

from cardlake.synth import vocab as V
from cardlake.synth.world import luhn_check_digit

SYNTACTIC = {"malformed_csv", "invalid_json", "broken_xml", "malformed_line"}

BAD_DATES = ("2024-13-45", "31/02/2024", "not-a-date", "20240", "yesterday", "2024-02-30")
BAD_TIMESTAMPS = (
    "2024-13-45T25:61:00",
    "N/A",
    "32/01/2024 10:00",
    "1700000000x",
    "2024-02-30T10:00:00",
)

# source -> {kind: field path}; a path is a tuple of keys into the record dict.
DEFECTS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "crm_customers": {
        "malformed_csv": None,
        "unparseable_date": ("join_date",),
        "unknown_country": ("country",),
    },
    "financial_records": {
        "invalid_json": None,
        "unparseable_date": ("holder", "date_of_birth"),
        "unknown_country": ("address", "country"),
        "unknown_currency": ("accounts", "0", "currency"),
    },
    "demographics": {
        "broken_xml": None,
        "unparseable_date": ("birth_date",),
        "unknown_country": ("country",),
    },
    "service_interactions": {"malformed_line": None, "unparseable_date": ("opened_at",)},
    "product_usage": {
        "malformed_csv": None,
        "unparseable_date": ("last_seen",),
        "negative_amount": ("minutes",),
    },
    "card_tx_csv": {
        "malformed_csv": None,
        "unparseable_date": ("timestamp",),
        "negative_amount": ("amount",),
        "absurd_amount": ("amount",),
        "unknown_currency": ("currency",),
        "unknown_country": ("merchant_country",),
        "orphan_reference": ("card_id",),
    },
    "wallet_tx_jsonl": {
        "invalid_json": None,
        "unparseable_date": ("timestamp",),
        "negative_amount": ("amount",),
        "absurd_amount": ("amount",),
        "unknown_currency": ("currency",),
        "orphan_reference": ("wallet_id",),
    },
    "marketing_monthly": {"malformed_csv": None, "unparseable_date": ("extracted_on",)},
    "chargebacks": {
        "malformed_csv": None,
        "unparseable_date": ("reported_at",),
        "orphan_reference": ("transaction_id",),
    },
}


def pick_kind(defect_set: str, rnd: random.Random) -> str:
    """A defect kind for one record of ``defect_set``, uniformly among its kinds."""
    return rnd.choice(tuple(DEFECTS[defect_set]))


def _set_path(record: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node: Any = record
    for key in path[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value


def _get_path(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = record
    for key in path:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def corrupt_fields(record: dict[str, Any], defect_set: str, kind: str, rnd: random.Random) -> None:
    """Apply a semantic defect in place (no-op for syntactic kinds)."""
    path = DEFECTS[defect_set][kind]
    if path is None:
        return
    if kind == "unparseable_date":
        is_ts = "T" in str(_get_path(record, path)) or path[-1] in ("timestamp", "opened_at")
        _set_path(record, path, rnd.choice(BAD_TIMESTAMPS if is_ts else BAD_DATES))
    elif kind == "negative_amount":
        value = _get_path(record, path)
        _set_path(record, path, -abs(float(value)) - 0.01 if value not in ("", None) else -1.0)
    elif kind == "absurd_amount":
        _set_path(record, path, rnd.choice((9_999_999_999.99, 123_456_789.0, 5.0e7)))
    elif kind == "unknown_currency":
        _set_path(record, path, rnd.choice(V.UNKNOWN_CURRENCIES))
    elif kind == "unknown_country":
        _set_path(record, path, rnd.choice(V.UNKNOWN_COUNTRIES))
    elif kind == "orphan_reference":
        old = str(_get_path(record, path))
        digits = "".join(ch for ch in old if ch.isdigit())
        prefix = "" if old[:1].isdigit() else old[: len(old) - len(digits)]
        # Keys never start with 99 in the key ranges, so this one resolves to nobody.
        orphan = f"99{digits[2:]}"
        if not prefix and len(digits) == 16:  # a card number stays one (Luhn-valid)
            orphan = orphan[:15] + luhn_check_digit(orphan[:15])
        _set_path(record, path, f"{prefix}{orphan}")
    else:
        raise ValueError(f"unknown defect kind {kind!r}")


def break_text(line: str, kind: str, rnd: random.Random) -> str:
    """Apply a syntactic defect to one serialised record (no newline)."""
    if kind == "invalid_json":
        # A proper prefix of a JSON object never parses (the object is not closed).
        return line[: max(1, len(line) // 2 + rnd.randrange(-5, 5))].rstrip("}")
    if kind == "broken_xml":
        cut = line.rfind("</person>")
        body = line[:cut]
        return body + ("</persn>" if rnd.random() < 0.5 else "")
    if kind == "malformed_line":
        return line[: max(10, len(line) // 3)]
    raise ValueError(f"not a text defect: {kind!r}")
