"""Table layer vs plain Parquet with Spark: write and read the same N rows, printed as ratios.

    python bench/bench_tables.py [--rows 5000000] [--months 12] [--repeat 3]

Both sides use the same SparkSession (local profile) and the same DataFrame, partitioned by
month. "write" is the table layer's append (Spark writes Parquet, delta-rs commits) against
``df.write.partitionBy(...).parquet``; "read" is a full scan with an aggregate through the
layer's snapshot resolution against ``spark.read.parquet`` of the folder; "read 1 month" prunes
to one partition on both sides. The median of ``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import functions as F

from cardlake.config import load_config
from cardlake.spark import build_session
from cardlake.tables import Tables


def _timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="cardlake-bench-"))
    cfg = load_config("local", overrides={"paths.lake_root": str(work / "lake")})
    spark = build_session(cfg)
    tables = Tables.from_config(spark, cfg)
    df = (
        spark.range(args.rows)
        .withColumn("month", F.format_string("2025-%02d", (F.col("id") % args.months) + 1))
        .withColumn("customer_id", (F.col("id") * 7919) % 100_000)
        .withColumn("amount", (F.rand(seed=7) * 500).cast("decimal(12,2)"))
        .withColumn(
            "channel",
            F.element_at(
                F.array(*[F.lit(c) for c in ("POS", "ATM", "ONLINE", "P2P")]),
                (F.col("id") % 4 + 1).cast("int"),
            ),
        )
        .withColumn("ts", F.timestamp_seconds(F.lit(1_735_689_600) + F.col("id") % 31_536_000))
        .cache()
    )
    df.count()
    parquet_dir = work / "parquet"
    run = {"n": 0}

    def write_parquet() -> None:
        shutil.rmtree(parquet_dir, ignore_errors=True)
        df.write.mode("overwrite").partitionBy("month").parquet(str(parquet_dir))

    def write_table() -> None:
        run["n"] += 1
        tables.append(f"bronze.bench_{run['n']}", df, partition_by=["month"])

    write_pq, _ = _timed(write_parquet, args.repeat)
    write_tb, _ = _timed(write_table, args.repeat)
    name = "bronze.bench_1"

    def full(frame_fn: Callable[[], object]) -> Callable[[], object]:
        return lambda: frame_fn().agg(F.count("*"), F.sum("amount")).collect()  # type: ignore[attr-defined]

    read_pq, pq_result = _timed(full(lambda: spark.read.parquet(str(parquet_dir))), args.repeat)
    read_tb, tb_result = _timed(full(lambda: tables.read(name)), args.repeat)
    assert pq_result == tb_result, (pq_result, tb_result)
    one_pq, _ = _timed(
        full(lambda: spark.read.parquet(str(parquet_dir)).filter("month = '2025-03'")),
        args.repeat,
    )
    one_tb, _ = _timed(
        full(lambda: tables.read(name, partitions={"month": "2025-03"})), args.repeat
    )
    sql_tb, _ = _timed(
        lambda: spark.sql(f"select count(*), sum(amount) from {name}").collect(), args.repeat
    )

    print(f"rows={args.rows:,} months={args.months} repeat={args.repeat} (median seconds)")
    print(f"{'operation':<16}{'table layer':>12}{'parquet':>10}{'ratio':>8}")
    for label, ours, peer in (
        ("write", write_tb, write_pq),
        ("read full", read_tb, read_pq),
        ("read 1 month", one_tb, one_pq),
    ):
        print(f"{label:<16}{ours:>12.2f}{peer:>10.2f}{ours / peer:>8.2f}")
    print(
        f"{'sql full (Python data source)':<30}{sql_tb:>8.2f}s  ratio vs parquet "
        f"{sql_tb / read_pq:.2f}"
    )
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
