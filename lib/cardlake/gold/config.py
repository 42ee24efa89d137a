"""``conf/gold.yaml``: discretionary MCCs, revenue rules, feature windows, calendar, SQL server.

Loaded into frozen dataclasses; an unknown or missing key, or a value of the wrong type, is a
``ConfigError`` naming the key and the file. ``envs.<env>`` overlays the top level key by key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cardlake.config import PROJECT_ROOT, ConfigError, conf_dir

GOLD_CONF_NAME = "gold.yaml"


@dataclass(frozen=True)
class RevenueConfig:
    fee_usd_by_channel: Mapping[str, float]
    fx_margin_rate: float
    home_currency_by_country: Mapping[str, str]


@dataclass(frozen=True)
class FeaturesConfig:
    lookback_months: int = 12
    rolling_months: int = 3
    recency_cap_days: int = 366
    clv_margin_rate: float = 0.02
    clv_horizon_months: int = 36
    clv_monthly_discount: float = 0.01


@dataclass(frozen=True)
class CalendarConfig:
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class SqlServerConfig:
    host: str = "127.0.0.1"
    port: int = 10000


@dataclass(frozen=True)
class GoldConfig:
    discretionary_mccs: tuple[str, ...]
    revenue: RevenueConfig
    features: FeaturesConfig
    calendar: CalendarConfig
    sql_server: SqlServerConfig


def default_gold_conf() -> Path:
    """``conf/gold.yaml`` beside base.yaml (``CARDLAKE_CONF_DIR`` moves both)."""
    folder = conf_dir()
    return (
        folder / GOLD_CONF_NAME
        if (folder / GOLD_CONF_NAME).is_file()
        else (PROJECT_ROOT / "conf" / GOLD_CONF_NAME)
    )


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _typed(value: Any, kind: Any, where: str, path: Path) -> Any:
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if kind is dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            pass
    raise ConfigError(f"{path}: {where}: expected {getattr(kind, '__name__', kind)}, got {value!r}")


def _section(cls: type, values: Any, where: str, path: Path) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{path}: {where}: must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            raise ConfigError(
                f"{path}: {where}.{key}: unknown key {key!r} (known: {sorted(fields)})"
            )
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in values:
            if field.default is dataclasses.MISSING:
                raise ConfigError(f"{path}: {where}.{name}: missing required key")
            continue
        kind = {"int": int, "float": float, "str": str, "dt.date": dt.date}.get(str(field.type))
        kwargs[name] = (
            values[name] if kind is None else _typed(values[name], kind, f"{where}.{name}", path)
        )
    return cls(**kwargs)


def load_gold_config(env: str, path: Path | None = None) -> GoldConfig:
    """Loads ``conf/gold.yaml`` with its ``envs.<env>`` overlay.

    Raises:
        ConfigError: unknown, missing or mistyped keys; the message names the key and the file.
    """
    path = path or default_gold_conf()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    envs = data.pop("envs", {}) or {}
    top = _merge(data, envs.get(env) or {})
    known = {f.name for f in dataclasses.fields(GoldConfig)}
    for key in top:
        if key not in known:
            raise ConfigError(f"{path}: {key}: unknown key {key!r} (known: {sorted(known)})")
    for key in known:
        if key not in top:
            raise ConfigError(f"{path}: {key}: missing required key")
    mccs = top["discretionary_mccs"]
    if not isinstance(mccs, list) or not all(isinstance(m, str) for m in mccs):
        raise ConfigError(f"{path}: discretionary_mccs: must be a list of quoted MCC strings")
    revenue_raw = top["revenue"]
    revenue = _section(RevenueConfig, revenue_raw, "revenue", path)
    fees = {
        str(k): _typed(v, float, f"revenue.fee_usd_by_channel.{k}", path)
        for k, v in (revenue.fee_usd_by_channel or {}).items()
    }
    homes = {
        str(k): _typed(v, str, f"revenue.home_currency_by_country.{k}", path)
        for k, v in (revenue.home_currency_by_country or {}).items()
    }
    revenue = dataclasses.replace(revenue, fee_usd_by_channel=fees, home_currency_by_country=homes)
    return GoldConfig(
        discretionary_mccs=tuple(mccs),
        revenue=revenue,
        features=_section(FeaturesConfig, top["features"], "features", path),
        calendar=_section(CalendarConfig, top["calendar"], "calendar", path),
        sql_server=_section(SqlServerConfig, top["sql_server"], "sql_server", path),
    )
