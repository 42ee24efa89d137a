"""Masking of personal fields for the dashboard's viewers, by role.

The classification lives in ``conf/governance.yaml`` (:mod:`cardlake.governance`), whose masks
are SQL expressions for the SQL server's views; the dashboard reads pandas values, so this
module applies the same masks in Python: a column classified there gets its mask (initials,
email, phone, year, redact, nullify); a column not classified there yet falls back to the
small list below. ``analyst`` (the default) sees masks; ``privileged`` sees clear values.
Unknown roles are refused rather than shown clear values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any

ROLES = ("analyst", "privileged")
DEFAULT_ROLE = "analyst"
MASK = "•••"
PHONE_DIGITS = 4  # as the SQL views show (cardlake.governance.masking)


def _initials(value: str) -> str:
    parts = [p for p in re.split(r"[\s\-']+", value) if p]
    return " ".join(f"{p[0].upper()}." for p in parts) or MASK


def _email(value: str) -> str:
    local, at, domain = value.partition("@")
    if not at:
        return MASK
    return f"{local[:1]}{MASK}@{domain}"


def _phone(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return f"{MASK}{digits[-PHONE_DIGITS:]}" if len(digits) >= PHONE_DIGITS else MASK


def _birth(value: Any) -> str:
    if isinstance(value, datetime | date):
        return str(value.year)
    text = str(value)
    return text[:4] if re.match(r"^\d{4}", text) else MASK


def _redact(_: Any) -> str:
    return MASK


RULES: Mapping[str, Callable[[Any], str]] = {
    "first_name": lambda v: _initials(str(v)),
    "last_name": lambda v: _initials(str(v)),
    "full_name": lambda v: _initials(str(v)),
    "name": lambda v: _initials(str(v)),
    "email": lambda v: _email(str(v)),
    "phone": lambda v: _phone(str(v)),
    "date_of_birth": _birth,
    "address": _redact,
    "street": _redact,
    "postcode": _redact,
    "zip": _redact,
    "device_id": _redact,
    "national_id": _redact,
    "notes": _redact,
    "note": _redact,
    "card_token": _redact,
    "instrument_id": _redact,
    "card_id": _redact,
    "wallet_id": _redact,
}
"""Personal field name to its analyst mask; any other field is shown as it is."""


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown dashboard role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def is_personal(field: str) -> bool:
    return field in RULES


GOVERNANCE_MASKS: Mapping[str, Callable[[Any], Any]] = {
    "keep": lambda v: v,
    "initials": lambda v: _initials(str(v)),
    "email": lambda v: _email(str(v)),
    "phone": lambda v: _phone(str(v)),
    "last_two": lambda v: MASK + re.sub(r"[^0-9A-Za-z]", "", str(v))[-2:],  # a national id
    "year": _birth,
    "redact": _redact,
    # A text value is shown as present but hidden (a blank cell reads as missing data); other
    # types stay None so charts still compute over the column.
    "nullify": lambda v: _redact(v) if isinstance(v, str) else None,
}


@lru_cache(maxsize=1)
def governance_rules() -> Any:
    """The governance settings' masks, read once (YAML: a few tenths of a second, which the
    dashboard pays at start-up rather than on the first masked value); None without them."""
    try:
        from cardlake.governance.settings import load_governance

        return load_governance()
    except Exception:  # no governance settings here: the local rules alone apply
        return None


def mask_value(field: str, value: Any, role: str, *, table: str = "silver.customers") -> Any:
    """``value`` of ``table``'s column ``field`` as the role may see it (None stays None)."""
    check_role(role)
    if value is None or role == "privileged":
        return value
    governance = governance_rules()
    rule = governance.rule(table, field) if governance is not None else None
    if rule is not None:
        return GOVERNANCE_MASKS[rule.mask](value)
    return RULES[field](value) if field in RULES else value


def mask_frame(df: Any, role: str, *, table: str) -> Any:
    """A copy of the pandas frame with every classified or personal column masked for ``role``."""
    check_role(role)
    if role == "privileged":
        return df
    out = df.copy()
    for column in out.columns:
        out[column] = [mask_value(column, v, role, table=table) for v in out[column]]
    return out
