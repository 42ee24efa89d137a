"""``conf/gold.yaml``: discretionary MCCs, revenue rules, feature windows, calendar, SQL server.

Loaded into frozen dataclasses by :func:`cardlake.config.load_settings`: an unknown or missing
key, or a value of the wrong type, is a ``ConfigError`` naming the key and the file; the
``gold:`` section of ``conf/<env>.yaml`` overlays the file key by key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cardlake.config import conf_dir, load_settings

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
    # delta-rs engine only: a commit is visible to SQL users within this many seconds (delta-spark
    # tables read the latest commit at every query).
    refresh_seconds: float = 2.0


@dataclass(frozen=True)
class GoldConfig:
    discretionary_mccs: tuple[str, ...]
    revenue: RevenueConfig
    features: FeaturesConfig
    calendar: CalendarConfig
    sql_server: SqlServerConfig


def default_gold_conf() -> Path:
    """``gold.yaml`` in the conf folder (``CARDLAKE_CONF_DIR`` moves it)."""
    return conf_dir() / GOLD_CONF_NAME


def load_gold_config(env: str | None = None, path: Path | None = None) -> GoldConfig:
    """Loads ``gold.yaml`` with the ``gold:`` section of ``<env>.yaml`` over it.

    A thin wrapper over :func:`cardlake.config.load_settings`; the harness loads it once.

    Raises:
        ConfigError: unknown, missing or mistyped keys; the message names the key and the file.
    """
    return load_settings(GoldConfig, "gold", env=env, file=path)
