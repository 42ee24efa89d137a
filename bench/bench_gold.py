"""customer_monthly_features at scale: Cardlake vs plain PySpark and DuckDB, and one month.

    python bench/bench_gold.py --transactions 10000000

Synthesises silver-shaped transactions and customer snapshots with Spark (seeded) into Parquet,
then times (a) Cardlake's ``customer_monthly_features`` for every month, written to Parquet,
(b) the equivalent SQL (the transaction-derived features: monthly aggregates, 3-month rolling
engagement, 12-month RFM, CLV, profile) written by hand, run by plain PySpark (Spark SQL over the
same Parquet, in the same session) and by DuckDB over the same Parquet files, and
(c) Cardlake for the last month alone (incremental: its 12-month window of partitions) against
the full build. Interactions and marketing are empty here (their joins still run). Prints the
figures and the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cardlake.config import load_config
from cardlake.gold.config import load_gold_config
from cardlake.gold.features import customer_monthly_features
from cardlake.months import shift
from cardlake.silver.schemas import INTERACTIONS, MARKETING_MONTHLY
from cardlake.spark import build_logged_session

SEED = 20240101
START, N_MONTHS, TX_PER_CUSTOMER_MONTH = "2024-01", 12, 8
CHANNELS = ["POS", "POS", "POS", "ONLINE", "ONLINE", "ATM", "P2P", "TOPUP", "FX", "CRYPTO"]
STATES = ["completed"] * 17 + ["failed", "declined", "pending"]
MCCS = ["5411", "5812", "5814", "5541", "4111", "4900", "5691", "5732", "7011", "4511"]


def synthesise(spark: SparkSession, n: int, folder: Path) -> list[str]:
    months = [shift(START, k) for k in range(N_MONTHS)]
    customers = max(1, n // (N_MONTHS * TX_PER_CUSTOMER_MONTH))
    month_arr = F.array(*[F.lit(m) for m in months])

    def pick(values: list[str], seed: int) -> F.Column:
        arr = F.array(*[F.lit(v) for v in values])
        return F.element_at(arr, (F.floor(F.rand(seed) * len(values)) + 1).cast("int"))

    month = F.element_at(month_arr, (F.floor(F.rand(SEED) * N_MONTHS) + 1).cast("int"))
    tx = spark.range(n).select(
        F.format_string("TX%012d", F.col("id")).alias("transaction_id"),
        F.format_string("CK%010d", F.floor(F.rand(SEED + 1) * customers).cast("long")).alias(
            "customer_key"
        ),
        month.alias("month"),
        (F.floor(F.rand(SEED + 2) * 28) + 1).cast("int").alias("_day"),
        F.exp(F.randn(SEED + 3) + 3.5).alias("amount_usd"),
        pick(CHANNELS, SEED + 4).alias("channel"),
        pick(STATES, SEED + 5).alias("state"),
        F.when(F.rand(SEED + 6) < 0.85, "debit").otherwise("credit").alias("direction"),
        pick(MCCS, SEED + 7).alias("mcc"),
        (F.rand(SEED + 8) < 0.08).alias("is_night"),
        (F.rand(SEED + 9) < 0.12).alias("is_cross_border"),
    )
    tx = tx.withColumn(
        "txn_date",
        F.make_date(
            F.substring("month", 1, 4).cast("int"),
            F.substring("month", 6, 2).cast("int"),
            F.col("_day"),
        ),
    ).drop("_day")
    tx.write.mode("overwrite").partitionBy("month").parquet(str(folder / "transactions"))
    snaps = (
        spark.range(customers)
        .select(
            F.format_string("CK%010d", F.col("id")).alias("customer_key"),
            F.date_sub(
                F.lit(f"{START}-01").cast("date"), F.floor(F.rand(SEED + 10) * 700).cast("int")
            ).alias("join_date"),
            F.date_sub(
                F.lit("2000-01-01").cast("date"), F.floor(F.rand(SEED + 11) * 15000).cast("int")
            ).alias("date_of_birth"),
            pick(["standard", "premium", "metal"], SEED + 12).alias("plan_type"),
            pick(["GB", "DE", "FR", "PL", "ES"], SEED + 13).alias("country"),
            (F.floor(F.rand(SEED + 14) * 550) + 300).cast("int").alias("credit_score"),
            (F.rand(SEED + 15) < 0.15).alias("has_debt"),
        )
        .withColumn("debt_outstanding_usd", F.when(F.col("has_debt"), F.lit(1000.0)).otherwise(0.0))
        .withColumn("closed_month", F.lit(None).cast("string"))
        .crossJoin(spark.createDataFrame([(m,) for m in months], "month string"))
    )
    snaps.write.mode("overwrite").partitionBy("month").parquet(str(folder / "snapshots"))
    return months


# The same features as one SQL query, written the way a data engineer would write them by hand.
# Two dialects of it: DuckDB's (the single-machine peer) and Spark SQL's (the plain-PySpark
# peer, over the same Parquet as temporary views); they differ in the four fragments below.
DIALECTS = {
    "duckdb": {
        "sources": "tx AS (SELECT * FROM read_parquet('{tx}/*/*.parquet', hive_partitioning = "
        "true)),\nsnap AS (SELECT * FROM read_parquet('{snap}/*/*.parquet', "
        "hive_partitioning = true)),",
        "join_month": "strftime(join_date, '%Y-%m')",
        "recency": "datediff('day', w.last_completed_date, b.month_end)",
        "age_months": "datediff('month', b.date_of_birth, b.month_end)",
    },
    "spark": {
        "sources": "",  # tx and snap are temporary views
        "join_month": "date_format(join_date, 'yyyy-MM')",
        "recency": "datediff(b.month_end, w.last_completed_date)",
        # DuckDB's datediff('month') counts month boundaries: the same here
        "age_months": "((year(b.month_end) * 12 + month(b.month_end)) "
        "- (year(b.date_of_birth) * 12 + month(b.date_of_birth)))",
    },
}

FEATURES_SQL = """
WITH {sources}
base AS (
  SELECT customer_key, month,
         CAST(substr(month, 1, 4) AS INT) * 12 + CAST(substr(month, 6, 2) AS INT) - 1 AS m_idx,
         year(join_date) * 12 + month(join_date) - 1 AS join_idx,
         last_day(CAST(month || '-01' AS DATE)) AS month_end,
         plan_type, country, date_of_birth, credit_score, has_debt, debt_outstanding_usd
  FROM snap
  WHERE {join_month} <= month AND (closed_month IS NULL OR closed_month >= month)
),
act AS (
  SELECT customer_key, month,
         CAST(substr(month, 1, 4) AS INT) * 12 + CAST(substr(month, 6, 2) AS INT) - 1 AS a_idx,
         count(*) AS tx_count,
         count(*) FILTER (WHERE state = 'completed') AS completed_count,
         count(*) FILTER (WHERE state IN ('failed', 'declined')) AS failed_count,
         coalesce(sum(amount_usd) FILTER (WHERE state = 'completed' AND direction = 'debit'), 0)
           AS spend_usd,
         count(*) FILTER (WHERE state = 'completed' AND direction = 'debit') AS spend_n,
         coalesce(stddev_samp(amount_usd) FILTER (WHERE state = 'completed'
           AND direction = 'debit'), 0) AS spend_volatility_usd,
         count(*) FILTER (WHERE channel = 'ATM') AS atm_n,
         count(*) FILTER (WHERE channel = 'ONLINE') AS online_n,
         count(*) FILTER (WHERE is_cross_border) AS cross_border_n,
         count(*) FILTER (WHERE is_night) AS night_count,
         coalesce(sum(amount_usd) FILTER (WHERE state = 'completed' AND direction = 'debit'
           AND mcc IN ({mccs})), 0) AS discretionary_usd,
         count(DISTINCT channel) AS distinct_tx_types,
         count(DISTINCT txn_date) AS active_days,
         coalesce(sum(amount_usd) FILTER (WHERE state = 'completed'), 0) AS eng_value_usd,
         count(DISTINCT channel) FILTER (WHERE state = 'completed') AS eng_types,
         count(DISTINCT txn_date) FILTER (WHERE state = 'completed') AS eng_days,
         max(txn_date) FILTER (WHERE state = 'completed') AS last_completed_date
  FROM tx WHERE customer_key IS NOT NULL GROUP BY customer_key, month
),
win AS (
  SELECT b.customer_key, b.month,
         sum(CASE WHEN a.a_idx > b.m_idx - 3 THEN a.completed_count ELSE 0 END) AS r_count,
         sum(CASE WHEN a.a_idx > b.m_idx - 3 THEN a.eng_value_usd ELSE 0 END) AS r_value,
         sum(CASE WHEN a.a_idx > b.m_idx - 3 THEN a.eng_types ELSE 0 END) AS r_types,
         sum(CASE WHEN a.a_idx > b.m_idx - 3 THEN a.eng_days ELSE 0 END) AS r_days,
         sum(a.completed_count) AS frequency_12m, sum(a.spend_usd) AS monetary_12m_usd,
         max(a.last_completed_date) AS last_completed_date
  FROM base b JOIN act a ON a.customer_key = b.customer_key
   AND a.a_idx BETWEEN b.m_idx - 11 AND b.m_idx
  GROUP BY b.customer_key, b.month
)
SELECT b.customer_key, b.month,
       coalesce(t.tx_count, 0) AS tx_count, coalesce(t.completed_count, 0) AS completed_count,
       coalesce(t.failed_count, 0) AS failed_count,
       CASE WHEN t.tx_count > 0 THEN t.failed_count / t.tx_count ELSE 0 END AS failed_rate,
       coalesce(t.spend_usd, 0) AS spend_usd,
       CASE WHEN t.spend_n > 0 THEN t.spend_usd / t.spend_n ELSE 0 END AS avg_spend_usd,
       coalesce(t.spend_volatility_usd, 0) AS spend_volatility_usd,
       CASE WHEN t.tx_count > 0 THEN t.atm_n / t.tx_count ELSE 0 END AS atm_rate,
       CASE WHEN t.tx_count > 0 THEN t.online_n / t.tx_count ELSE 0 END AS online_rate,
       CASE WHEN t.tx_count > 0 THEN t.cross_border_n / t.tx_count ELSE 0 END AS cross_border_rate,
       coalesce(t.night_count, 0) AS night_count,
       CASE WHEN t.tx_count > 0 THEN t.night_count / t.tx_count ELSE 0 END AS night_rate,
       CASE WHEN t.spend_usd > 0 THEN t.discretionary_usd / t.spend_usd ELSE 0 END
         AS discretionary_share,
       coalesce(t.distinct_tx_types, 0) AS distinct_tx_types,
       coalesce(t.active_days, 0) AS active_days,
       coalesce(t.completed_count, 0) > 0 AS is_active,
       coalesce(w.r_count, 0) / least(3, b.m_idx - b.join_idx + 1) AS eng_count_3m,
       coalesce(w.r_value, 0) / least(3, b.m_idx - b.join_idx + 1) AS eng_value_usd_3m,
       coalesce(w.r_types, 0) / least(3, b.m_idx - b.join_idx + 1) AS eng_types_3m,
       coalesce(w.r_days, 0) / least(3, b.m_idx - b.join_idx + 1) AS eng_days_3m,
       coalesce(least({recency}, {cap}), {cap})
         AS recency_days,
       coalesce(w.frequency_12m, 0) AS frequency_12m,
       coalesce(w.monetary_12m_usd, 0) AS monetary_12m_usd,
       coalesce(w.monetary_12m_usd, 0) / least(12, b.m_idx - b.join_idx + 1) * {margin}
         * {annuity} AS clv_estimate_usd,
       b.plan_type, b.country,
       CAST(floor({age_months} / 12) AS INT) AS age,
       b.m_idx - b.join_idx AS tenure_months, b.credit_score, b.has_debt, b.debt_outstanding_usd
FROM base b
LEFT JOIN act t ON t.customer_key = b.customer_key AND t.month = b.month
LEFT JOIN win w ON w.customer_key = b.customer_key AND w.month = b.month
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--workdir", help="keep data here (default: a temporary folder)")
    args = parser.parse_args(argv)
    import duckdb

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_gold_"))
    cfg = load_config("local", overrides={"spark.profile": "large"})  # millions of rows
    gcfg = load_gold_config("local")
    spark = build_logged_session(cfg, command="bench-gold")
    try:
        t0 = time.perf_counter()
        months = synthesise(spark, args.transactions, work)
        print(
            f"synthesised {args.transactions:,} transactions in "
            f"{time.perf_counter() - t0:.1f}s ({work})"
        )
        tx = spark.read.parquet(str(work / "transactions"))
        snaps = spark.read.parquet(str(work / "snapshots"))
        empty_int = spark.createDataFrame([], INTERACTIONS)
        empty_mkt = spark.createDataFrame([], MARKETING_MONTHLY)

        def cardlake(feature_months: list[str], out: str) -> float:
            window = {shift(feature_months[0], -k) for k in range(gcfg.features.lookback_months)}
            window |= set(feature_months)
            started = time.perf_counter()
            customer_monthly_features(
                snaps.where(F.col("month").isin(feature_months)),
                transactions_df=tx.where(F.col("month").isin(sorted(window))),
                interactions_df=empty_int,
                marketing_df=empty_mkt,
                months=feature_months,
                discretionary_mccs=gcfg.discretionary_mccs,
                settings=gcfg.features,
            ).write.mode("overwrite").parquet(str(work / out))
            return time.perf_counter() - started

        full_s = cardlake(months, "features_full")
        one_s = cardlake([months[-1]], "features_one")
        rows = spark.read.parquet(str(work / "features_full")).count()
        from cardlake.gold.features import _annuity

        f = gcfg.features
        params = {
            "mccs": ", ".join(f"'{m}'" for m in gcfg.discretionary_mccs),
            "cap": f.recency_cap_days,
            "margin": f.clv_margin_rate,
            "annuity": _annuity(f.clv_horizon_months, f.clv_monthly_discount),
        }

        def features_sql(dialect: str) -> str:
            fragments = dict(DIALECTS[dialect])
            fragments["sources"] = fragments["sources"].format(
                tx=work / "transactions", snap=work / "snapshots"
            )
            return FEATURES_SQL.format(**fragments, **params)

        tx.createOrReplaceTempView("tx")
        snaps.createOrReplaceTempView("snap")
        started = time.perf_counter()
        spark.sql(features_sql("spark")).write.mode("overwrite").parquet(str(work / "plain"))
        plain_s = time.perf_counter() - started
        con = duckdb.connect()
        started = time.perf_counter()
        con.execute(
            f"COPY ({features_sql('duckdb')}) TO '{work / 'duck.parquet'}' (FORMAT parquet)"
        )
        duck_s = time.perf_counter() - started
        duck_rows = con.execute(f"SELECT count(*) FROM '{work / 'duck.parquet'}'").fetchone()[0]
        plain_rows = spark.read.parquet(str(work / "plain")).count()
        print(
            f"customer-month rows: cardlake {rows:,}, plain pyspark {plain_rows:,}, "
            f"duckdb {duck_rows:,}"
        )
        checked = (
            "spend_usd",
            "eng_value_usd_3m",
            "recency_days",
            "clv_estimate_usd",
            "age",
            "distinct_tx_types",
            "active_days",
            "eng_days_3m",
            "eng_types_3m",
        )

        def spark_sums(folder: str) -> list[float]:
            row = (
                spark.read.parquet(str(work / folder))
                .agg(*[F.sum(c).cast("double").alias(c) for c in checked])
                .collect()[0]
            )
            return [row[c] for c in checked]

        theirs = con.execute(
            "SELECT "
            + ", ".join(f"CAST(sum({c}) AS DOUBLE)" for c in checked)
            + f" FROM '{work / 'duck.parquet'}'"
        ).fetchone()
        for name, sums in (
            ("cardlake", spark_sums("features_full")),
            ("plain pyspark", spark_sums("plain")),
        ):
            gaps = {
                c: abs(o - t) / max(abs(t), 1.0)
                for c, o, t in zip(checked, sums, theirs, strict=True)
            }
            worst = max(gaps, key=gaps.__getitem__)
            print(
                f"same answers: {name} vs duckdb, column sums {', '.join(checked)} agree "
                f"within {gaps[worst]:.1e} (relative; widest: {worst})"
            )
        print(
            f"full build ({len(months)} months): cardlake {full_s:.1f}s, plain pyspark "
            f"{plain_s:.1f}s, duckdb {duck_s:.1f}s; ratio cardlake/duckdb "
            f"{full_s / duck_s:.2f}, cardlake/plain pyspark {full_s / plain_s:.2f}"
        )
        print(
            f"one new month (incremental, {months[-1]}): cardlake {one_s:.1f}s, "
            f"ratio incremental/full {one_s / full_s:.2f}"
        )
        print(f"command: python bench/bench_gold.py --transactions {args.transactions}")
    finally:
        spark.stop()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
