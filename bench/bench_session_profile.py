"""Which session settings help on a small machine: shuffle partitions and adaptive execution.

    python bench/bench_session_profile.py [--rows 3000000] [--repeat 3]

Runs a gold-like workload (per customer-month aggregates, a 3-month window, a join back) in
one local session, changing only runtime SQL settings between runs, and prints the median time
of each setting and its ratio to Spark's defaults (200 partitions, adaptive on).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from pyspark.sql import Window
from pyspark.sql import functions as F

from cardlake.config import load_config
from cardlake.spark import build_logged_session

SETTINGS = (
    ("spark default: 200 partitions, AQE on", "200", "true"),
    ("200 partitions, AQE off", "200", "false"),
    ("32 partitions, AQE on", "32", "true"),
    ("8 partitions, AQE on (large profile)", "8", "true"),
    ("8 partitions, AQE off", "8", "false"),
    ("2 partitions, AQE off (local, test profiles)", "2", "false"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    spark = build_logged_session(
        load_config("local", overrides={"spark.profile": "large"}), command="bench-session-profile"
    )
    tx = (
        spark.range(args.rows)
        .withColumn("customer_id", (F.col("id") * 7919) % 20_000)
        .withColumn("month", F.format_string("2025-%02d", (F.col("id") % 12) + 1))
        .withColumn("amount", F.rand(seed=3) * 300)
        .withColumn("channel", (F.col("id") % 5).cast("string"))
        .cache()
    )
    tx.count()

    def workload() -> int:
        monthly = tx.groupBy("customer_id", "month").agg(
            F.count("*").alias("n"),
            F.sum("amount").alias("spend"),
            F.stddev("amount").alias("volatility"),
            F.countDistinct("channel").alias("channels"),
        )
        window = Window.partitionBy("customer_id").orderBy("month").rowsBetween(-2, 0)
        rolled = monthly.withColumn("spend_3m", F.avg("spend").over(window))
        totals = tx.groupBy("customer_id").agg(F.sum("amount").alias("lifetime"))
        return rolled.join(totals, on="customer_id", how="left").count()

    results = []
    for label, partitions, adaptive in SETTINGS:
        spark.conf.set("spark.sql.shuffle.partitions", partitions)
        spark.conf.set("spark.sql.adaptive.enabled", adaptive)
        workload()  # warm-up
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            workload()
            times.append(time.perf_counter() - started)
        results.append((label, statistics.median(times)))
    baseline = results[0][1]
    print(
        f"rows={args.rows:,} cores={spark.sparkContext.defaultParallelism} "
        f"repeat={args.repeat} (median seconds)"
    )
    for label, seconds in results:
        print(f"{label:<42}{seconds:>8.2f}{seconds / baseline:>8.2f}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
