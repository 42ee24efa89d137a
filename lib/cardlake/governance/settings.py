"""``conf/governance.yaml``: who may read what over JDBC, and how each column is classified.

Loaded with the project's strict settings loader into frozen dataclasses; an unknown or missing
key, or a value of the wrong type, is a ``ConfigError`` naming the key and the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

from cardlake.config import ConfigError, load_settings
from cardlake.tables.layer import LAYERS as LAKE_LAYERS

GOVERNANCE_CONF_NAME = "governance"

Classification = Literal["none", "personal", "sensitive", "card"]
Mask = Literal["keep", "initials", "email", "phone", "last_two", "year", "redact", "nullify"]


@dataclass(frozen=True)
class LdapSettings:
    url: str
    people_base: str
    group_base: str


@dataclass(frozen=True)
class SqlAccessSettings:
    ldap: LdapSettings
    roles: Mapping[str, str]
    schemas: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.schemas) - set(self.roles))
        if unknown:
            raise ConfigError(f"governance sql_server.schemas: role {unknown[0]!r} is not in roles")


@dataclass(frozen=True)
class ColumnRule:
    """A column's dictionary entry: classification (``class`` in YAML), the mask the analyst
    role sees, what it holds and, where derived, its rule."""

    classification: Classification
    mask: Mask
    description: str
    rule: str | None = None


@dataclass(frozen=True)
class GovernanceSettings:
    sql_server: SqlAccessSettings
    columns: Mapping[str, Mapping[str, str]]
    retention_hours: Mapping[str, int]
    tables: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for layer, hours in self.retention_hours.items():
            if layer not in LAKE_LAYERS:
                raise ConfigError(f"governance retention_hours.{layer}: not a layer {LAKE_LAYERS}")
            if hours < 0:
                raise ConfigError(f"governance retention_hours.{layer}: must be >= 0, got {hours}")
        missing = sorted(set(LAKE_LAYERS) - set(self.retention_hours))
        if missing:
            raise ConfigError(f"governance retention_hours: no retention for {missing}")
        for where, rules in [("columns", self.columns)] + [
            (f"tables.{t}", r) for t, r in self.tables.items()
        ]:
            for column, rule in rules.items():
                _rule(rule, f"{where}.{column}")

    def rule(self, table: str, column: str) -> ColumnRule | None:
        """The rule of ``column`` in ``table`` (``"silver.customers"``), None when unclassified."""
        raw = self.tables.get(table, {}).get(column) or self.columns.get(column)
        return None if raw is None else _rule(raw, f"{table}.{column}")


_CLASSES = ("none", "personal", "sensitive", "card")
_MASKS = ("keep", "initials", "email", "phone", "last_two", "year", "redact", "nullify")


_KEYS = {"class", "mask", "description", "rule"}


def _rule(raw: Mapping[str, str], where: str) -> ColumnRule:
    # YAML writes `class:` (a Python keyword): checked here rather than by field name.
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"governance {where}: unknown key {unknown[0]!r}; known: {sorted(_KEYS)}")
    missing = sorted({"class", "description"} - set(raw))
    if missing:
        raise ConfigError(f"governance {where}: missing key {missing[0]!r}")
    classification, mask = raw["class"], raw.get("mask", "keep")
    if not str(raw["description"]).strip():
        raise ConfigError(f"governance {where}: empty description")
    if classification not in _CLASSES:
        raise ConfigError(f"governance {where}: class {classification!r} not in {_CLASSES}")
    if mask not in _MASKS:
        raise ConfigError(f"governance {where}: mask {mask!r} not in {_MASKS}")
    if classification == "personal" and mask == "keep":
        raise ConfigError(f"governance {where}: a personal column needs a mask other than keep")
    return ColumnRule(
        classification=cast(Classification, classification),  # checked against the list above
        mask=cast(Mask, mask),
        description=str(raw["description"]),
        rule=raw.get("rule"),
    )


def load_governance(env: str | None = None) -> GovernanceSettings:
    """``conf/governance.yaml`` with its overlay for ``env``."""
    return load_settings(GovernanceSettings, GOVERNANCE_CONF_NAME, env=env)
