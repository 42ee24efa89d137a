"""A small lake with just what the fraud stream reads, built in seconds.

The stream needs three silver tables (transactions, customers, FX rates) and a fraud champion
in the registry. The session's ``built_lake`` has them too, but costs minutes of the whole
pipeline; this writes the generator's own transactions of the two months before the streamed
one straight into silver's shape (tokens as bronze makes them, fixed FX rates), and registers a
small logistic regression over the shared fraud features as ``@champion``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cardlake.config import Config, load_config
from cardlake.synth import vocab as V
from cardlake.synth.stream import card_token, params_of
from cardlake.synth.transactions import N_CARD_CHANNELS, simulate_month
from cardlake.synth.world import build_world
from cardlake.tables import Tables

WORLD = {"seed": 11, "n_customers": 400}  # the last month has a little over 2,000 events
# Units of each currency per USD, the same every day: amount_usd is known exactly.
RATES = {c: 1.0 + 0.25 * i for i, c in enumerate(V.CURRENCIES)}
HISTORY_MONTHS = 2


@dataclass(frozen=True)
class MiniLake:
    cfg: Config
    root: Path

    @property
    def lake_root(self) -> Path:
        return self.root / "lake"

    def tables(self, spark: SparkSession) -> Tables:
        return Tables.from_config(spark, self.cfg)


def mini_config(root: Path) -> Config:
    return load_config(
        "test",
        overrides={
            "paths.lake_root": str(root / "lake"),
            "paths.landing_root": str(root / "landing"),
            "paths.truth_root": str(root / "truth"),
            "synth": dict(WORLD),
        },
    )


def _history(cfg: Config, key: bytes) -> pd.DataFrame:
    world = build_world(params_of(cfg.synth))
    countries = [*V.ALL_COUNTRIES, None]
    parts = []
    for month in world.months[-1 - HISTORY_MONTHS : -1]:
        b = simulate_month(world, world.month_index(month))
        is_card = b.channel < N_CARD_CHANNELS
        ts = pd.to_datetime(b.ts, unit="s", utc=True)
        currency = [V.CURRENCIES[int(c)] for c in b.currency]
        m_country = [countries[int(c)] for c in b.m_country]
        ip_country = [countries[int(c)] for c in b.ip_country]
        home = [world.country[int(p)] for p in b.person]
        hour = ts.hour
        abroad = [m if m is not None else i for m, i in zip(m_country, ip_country, strict=True)]
        parts.append(
            pd.DataFrame(
                {
                    "transaction_id": b.tx_id.astype(str),
                    "customer_key": [f"CK{int(p):05d}" for p in b.person],
                    "instrument_type": np.where(is_card, "card", "wallet"),
                    "instrument_id": [
                        card_token(str(c), key) if k else world.wallet_id[int(p)]
                        for c, k, p in zip(b.card, is_card, b.person, strict=True)
                    ],
                    "ts": ts,
                    "txn_date": ts.date,
                    "amount": b.amount.astype(float),
                    "currency": currency,
                    "amount_usd": [a / RATES[c] for a, c in zip(b.amount, currency, strict=True)],
                    "merchant_id": [
                        world.merchants.merchant_id[m] if m >= 0 else None for m in b.merchant
                    ],
                    "customer_country": home,
                    "channel": [V.CHANNELS[int(c)] for c in b.channel],
                    "direction": [("debit", "credit")[int(d)] for d in b.direction],
                    "state": [V.STATES[int(s)] for s in b.state],
                    "device_id": [str(d) or None for d in b.device],
                    "ip_country": ip_country,
                    "is_night": (hour < 6),
                    "is_cross_border": [
                        a is not None and a != h for a, h in zip(abroad, home, strict=True)
                    ],
                    "fraud_reported_at": pd.to_datetime(
                        np.where(b.reported_at >= 0, b.reported_at, np.nan), unit="s", utc=True
                    ),
                    "label": b.is_fraud.astype(int),
                    "month": month,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def build_mini_lake(spark: SparkSession, root: Path, *, token_key: bytes) -> MiniLake:
    """Writes silver.transactions/customers/fx_rates and registers a fraud ``@champion``."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression

    from cardlake.ml import tracking
    from cardlake.ml.common import LABEL, feature_stages, with_score
    from cardlake.ml.fraud import SMALL_AMOUNT_TAG
    from cardlake.ml.fraud_features import (
        CATEGORICAL,
        feature_columns,
        learn_small_amount,
        window_hours,
        with_transaction_features,
    )
    from cardlake.ml.settings import load_ml_settings
    from cardlake.silver.activity import normalised_channel

    cfg = mini_config(root)
    tables = Tables.from_config(spark, cfg)
    pdf = _history(cfg, token_key)
    tx = spark.createDataFrame(pdf.drop(columns="label"))
    tx = tx.withColumn("txn_date", F.to_date("txn_date")).withColumn(
        "channel", normalised_channel(F.col("channel"))
    )
    tables.overwrite("silver.transactions", tx, partition_by=["month"])
    world = build_world(params_of(cfg.synth))
    customers = spark.createDataFrame(
        pd.DataFrame(
            {"customer_key": [f"CK{p:05d}" for p in range(world.n)], "country": world.country}
        )
    )
    tables.overwrite("silver.customers", customers)
    days = pd.date_range(world.months[-1 - HISTORY_MONTHS] + "-01", periods=31 * 3 + 1)
    fx = spark.createDataFrame(
        pd.DataFrame(
            [(d.date(), c, r) for d in days for c, r in RATES.items()],
            columns=["date", "currency", "units_per_usd"],
        )
    )
    tables.overwrite("silver.fx_rates", fx)

    ml = load_ml_settings("test")
    numeric = feature_columns(ml.fraud)
    labelled = tables.read("silver.transactions").join(
        spark.createDataFrame(pdf[["transaction_id", "label"]]), on="transaction_id", how="inner"
    )
    small_usd = learn_small_amount(labelled, label=LABEL)  # as the fraud model learns it
    feats = with_transaction_features(
        labelled, hours=window_hours(ml.fraud), small_amount_usd=small_usd
    ).cache()
    lr = LogisticRegression(labelCol=LABEL, featuresCol="features", maxIter=20, regParam=0.01)
    model = Pipeline(stages=[*feature_stages(numeric, CATEGORICAL, scale=True), lr]).fit(feats)
    scores = np.array([r[0] for r in with_score(model, feats).select("score").collect()])
    threshold = float(np.quantile(scores, 0.9))  # about one event in ten alerts
    tracker = tracking.Tracker.configure(cfg.paths.lake_root, ml.tracking)
    with tracker.run("fraud", "mini-lake"):
        sample = feats.select(*CATEGORICAL, *numeric).limit(3).toPandas()
        uri = tracking.log_spark_model(model, sample, pd.DataFrame({"score": [0.5] * 3}))
        tracking.register_and_promote(
            tracker,
            name=ml.fraud.model_name,
            model_uri=uri,
            metric="test_auc",
            value=0.5,
            tags={"threshold": repr(threshold), "kind": "lr", SMALL_AMOUNT_TAG: repr(small_usd)},
        )
    feats.unpersist()
    return MiniLake(cfg=cfg, root=root)
