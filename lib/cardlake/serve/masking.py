"""Masking of personal fields for the dashboard's viewers, by role.

The governance package (issue 14) will own classification and masked SQL views; until the
dashboard can ask it, this small module applies the same rules to the values a page shows:
``analyst`` (the default) sees email partially, phone by its last two digits, date of birth as
the year, names as initials and addresses as the city-free country; ``privileged`` sees clear
values. Unknown roles are refused rather than shown clear values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

ROLES = ("analyst", "privileged")
DEFAULT_ROLE = "analyst"
MASK = "•••"


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
    return f"{MASK}{digits[-2:]}" if len(digits) >= 2 else MASK


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
}
"""Personal field name to its analyst mask; any other field is shown as it is."""


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown dashboard role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def is_personal(field: str) -> bool:
    return field in RULES


def mask_value(field: str, value: Any, role: str) -> Any:
    """``value`` as the role may see it (None stays None)."""
    check_role(role)
    if value is None or role == "privileged" or field not in RULES:
        return value
    return RULES[field](value)
