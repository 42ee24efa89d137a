"""Small synthetic gold features and silver transactions with known structure, for ML tests.

Customers belong to one of two behaviour groups (card-heavy online spenders vs cash users),
and a known share declines: their activity fades from a known month and they close two months
later. Fraud transactions are night-time, cross-border, online bursts of small amounts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from cardlake.gold.schemas import CUSTOMER_MONTHLY_FEATURES
from cardlake.silver.schemas import TRANSACTIONS

MONTHS = [f"2024-{m:02d}" for m in range(1, 13)]


def feature_rows(n_customers: int = 120, months: list[str] = MONTHS, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_customers):
        group = c % 2  # 0: online spenders, 1: cash users
        declines_from = int(rng.integers(4, len(months))) if c % 4 == 3 else None
        for i, month in enumerate(months):
            if declines_from is not None and i > declines_from + 2:
                break  # closed
            level = 1.0 if declines_from is None or i < declines_from else 0.15
            tx = int(rng.poisson(20 * level)) + (1 if level == 1.0 else 0)
            spend = float(tx * (60 if group == 0 else 25) * rng.uniform(0.8, 1.2))
            eng = 20 * level
            rows.append(
                {
                    "customer_key": f"CK{c:010x}",
                    "month": month,
                    "tx_count": tx,
                    "completed_count": tx,
                    "failed_count": int(rng.poisson(0.5)),
                    "failed_rate": float(rng.uniform(0, 0.1)),
                    "spend_usd": spend,
                    "avg_spend_usd": spend / max(tx, 1),
                    "spend_volatility_usd": float(rng.uniform(5, 30)),
                    "atm_rate": float(rng.uniform(0.5, 0.8) if group else rng.uniform(0, 0.1)),
                    "online_rate": float(
                        rng.uniform(0.5, 0.9) if not group else rng.uniform(0, 0.1)
                    ),
                    "cross_border_rate": float(rng.uniform(0, 0.1)),
                    "night_count": 0,
                    "night_rate": float(rng.uniform(0, 0.1)),
                    "discretionary_share": float(rng.uniform(0.4, 0.7) if not group else 0.2),
                    "distinct_tx_types": 3 if level == 1.0 else 1,
                    "active_days": int(min(28, tx)),
                    "is_active": tx > 0,
                    "eng_count_3m": eng * rng.uniform(0.9, 1.1),
                    "eng_value_usd_3m": eng * 40.0,
                    "eng_types_3m": 3.0 * level,
                    "eng_days_3m": 15 * level,
                    "recency_days": 2 if level == 1.0 else 20,
                    "frequency_12m": 100 * i,
                    "monetary_12m_usd": 1000.0 * i,
                    "clv_estimate_usd": 500.0,
                    "plan_type": ["standard", "premium"][c % 3 == 0],
                    "country": "GB",
                    "age": int(20 + c % 50),
                    "tenure_months": i + 1,
                    "credit_score": int(500 + (c * 7) % 300),
                    "has_debt": c % 5 == 0,
                    "debt_outstanding_usd": 8000.0 if c % 5 == 0 else 0.0,
                    "service_contacts": int(rng.poisson(0.2)),
                    "service_unresolved": 0,
                    "avg_resolution_hours": None,
                    "fraud_contacts": int(c % 7 == 0 and i % 5 == 0),
                    "notifications_sent": 4,
                    "notifications_failed": 0,
                    "notifications_opened": 2,
                    "notification_fail_rate": 0.0,
                    "plan_changed": False,
                    "device_changed": False,
                }
            )
    return pd.DataFrame(rows)


def features_df(spark: SparkSession, pdf: pd.DataFrame | None = None) -> DataFrame:
    pdf = feature_rows() if pdf is None else pdf
    records = [
        tuple(None if (isinstance(v, float) and np.isnan(v)) else v for v in row)
        for row in pdf[[f.name for f in CUSTOMER_MONTHLY_FEATURES]].itertuples(index=False)
    ]
    return spark.createDataFrame(records, schema=CUSTOMER_MONTHLY_FEATURES)


def transaction_rows(
    n_cards: int = 60, days: int = 150, seed: int = 11, start: datetime = datetime(2024, 1, 1)
) -> list[tuple]:
    """Silver transactions: genuine daytime POS spend plus fraud bursts on some cards."""
    rng = np.random.default_rng(seed)
    rows = []
    n = 0
    for card in range(n_cards):
        for day in range(days):
            for _ in range(int(rng.poisson(1.2))):
                ts = start + timedelta(
                    days=day, hours=int(rng.integers(8, 21)), minutes=int(rng.integers(0, 60))
                )
                rows.append(
                    _tx(n, card, ts, float(rng.uniform(10, 120)), "POS", "GB", False, None, False)
                )
                n += 1
            if rng.random() < 0.01:  # a fraud burst: small online night payments abroad
                for j in range(4):
                    ts = start + timedelta(days=day, hours=2, minutes=5 * j)
                    rows.append(
                        _tx(
                            n,
                            card,
                            ts,
                            float(rng.uniform(1, 4)),
                            "ONLINE",
                            "US",
                            True,
                            ts + timedelta(days=5),
                            True,
                        )
                    )
                    n += 1
    return rows


def _tx(
    n: int,
    card: int,
    ts: datetime,
    amount_usd: float,
    channel: str,
    merchant_country: str,
    night: bool,
    reported: datetime | None,
    cross: bool,
) -> tuple:
    return (
        f"TX{n:012d}",
        f"CK{card:010x}",
        "card",
        f"CARD{card:08d}",
        ts,
        ts.date(),
        Decimal(f"{amount_usd:.2f}"),
        "USD",
        1.0,
        round(amount_usd, 2),
        f"M{n % 40:06d}",
        "5411",
        merchant_country,
        "GB",
        channel,
        "debit",
        "completed",
        "dev-x" if channel == "ONLINE" else None,
        "US" if channel == "ONLINE" else None,
        night,
        cross,
        reported,
        ts.strftime("%Y-%m"),
    )


def transactions_df(spark: SparkSession, rows: list[tuple] | None = None) -> DataFrame:
    return spark.createDataFrame(
        rows if rows is not None else transaction_rows(), schema=TRANSACTIONS
    )
