"""Both table engines vs plain Parquet with Spark, side by side, printed as ratios.

    python bench/bench_tables.py [--rows 2000000] [--months 12] [--repeat 3] [--engine ...]

One SparkSession (large profile, Delta connector loaded), one cached DataFrame partitioned by
month. For each engine (delta-spark, delta-rs) and for plain Parquet:

- write: the layer's append of every row (plain: ``df.write.partitionBy("month").parquet``);
- read full: count and sum over a full read (plain: ``spark.read.parquet`` of the folder);
- read 1 month: the same pruned to one partition;
- sql BI query: one month grouped by channel and country in Spark SQL, over the table as the
  catalog registers it (delta-spark: ``USING delta``; delta-rs: the Python data source) against
  ``parquet.`folder```;
- merge 1%: an upsert of 1% of the rows (half updates, half inserts) on ``id`` and ``month``
  (plain Parquet has no merge: its peer rewrites the touched partitions with a join, the way
  one would without a table format).

The median of ``--repeat`` runs is reported; the ratios are against the plain Parquet figure.
Every read's answer is checked against plain Parquet's.
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
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.config import load_config
from cardlake.spark import build_logged_session, delta_spark_loaded
from cardlake.tables import Tables, catalog
from cardlake.tables.delta_rs import DeltaRsEngine


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _data(spark: SparkSession, rows: int, months: int) -> DataFrame:
    return (
        spark.range(rows)
        .withColumn("month", F.format_string("2025-%02d", (F.col("id") % months) + 1))
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
        .withColumn(
            "country",
            F.element_at(
                F.array(*[F.lit(c) for c in ("US", "GB", "DE", "FR", "ES", "MX")]),
                (F.col("customer_id") % 6 + 1).cast("int"),
            ),
        )
    )


def _merge_source(df: DataFrame, rows: int) -> DataFrame:
    # 1% of the rows: half existing ids with a new amount, half new ids.
    step = 200
    updates = df.filter(F.col("id") % step == 0).withColumn(
        "amount", F.lit(1).cast("decimal(12,2)")
    )
    inserts = df.filter(F.col("id") % step == 1).withColumn("id", F.col("id") + rows)
    return updates.unionByName(inserts)


BI_QUERY = (
    "select channel, country, count(*) as n, sum(amount) as total from {table} "
    "where month = '{month}' group by channel, country order by channel, country"
)


def _agg(frame: DataFrame) -> list[Any]:
    return [tuple(r) for r in frame.agg(F.count("*"), F.sum("amount")).collect()]


def _bench_engine(
    tables: Tables,
    df: DataFrame,
    source: DataFrame,
    repeat: int,
    month: str,
    expected_full: Any,
    expected_month: Any,
    expected_sql: Any,
) -> dict[str, float]:
    written = iter(range(1, repeat + 1))
    merged = iter(range(1, repeat + 1))
    name = "bronze.bench_1"
    figures: dict[str, float] = {}
    figures["write"], _ = _timed(
        lambda: tables.append(f"bronze.bench_{next(written)}", df, partition_by=["month"]),
        repeat,
    )
    figures["read full"], got = _timed(lambda: _agg(tables.read(name)), repeat)
    assert got == expected_full, (tables.engine.name, got, expected_full)
    figures["read 1 month"], got = _timed(
        lambda: _agg(tables.read(name, partitions={"month": month})), repeat
    )
    assert got == expected_month, (tables.engine.name, got, expected_month)
    catalog.register_table(
        tables.spark,
        layer="gold",
        name="bench_sql",
        path=tables.path(name),
        engine=tables.engine.name,
    )
    figures["sql BI query"], got = _timed(
        lambda: [
            tuple(r)
            for r in tables.spark.sql(
                BI_QUERY.format(table="gold.bench_sql", month=month)
            ).collect()
        ],
        repeat,
    )
    assert got == expected_sql, (tables.engine.name, "sql")
    tables.spark.sql("DROP TABLE gold.bench_sql")
    figures["merge 1%"], _ = _timed(
        lambda: tables.merge(f"bronze.bench_{next(merged)}", source, keys=["id", "month"]),
        repeat,
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--driver-memory", default="3g")
    parser.add_argument(
        "--engine", action="append", choices=["delta-spark", "delta-rs"], default=None
    )
    args = parser.parse_args(argv)
    engines = args.engine or ["delta-spark", "delta-rs"]

    work = Path(tempfile.mkdtemp(prefix="cardlake-bench-"))
    cfg = load_config(
        "local",
        overrides={
            "paths.lake_root": str(work / "lake"),
            "spark.driver_memory": args.driver_memory,
            "spark.profile": "large",
        },
    )
    spark = build_logged_session(cfg, command="bench-tables")
    df = _data(spark, args.rows, args.months).cache()
    df.count()
    source = _merge_source(df, args.rows).cache()
    source.count()
    month = "2025-03"

    # Plain Parquet, the peer.
    parquet_dir = work / "parquet"

    def write_parquet() -> None:
        shutil.rmtree(parquet_dir, ignore_errors=True)
        df.write.mode("overwrite").partitionBy("month").parquet(str(parquet_dir))

    def merge_parquet() -> None:
        # Rewrite the partitions the source touches: old rows not in the source, plus the source.
        target = spark.read.parquet(str(parquet_dir))
        touched = [r.month for r in source.select("month").distinct().collect()]
        kept = target.filter(F.col("month").isin(touched)).join(
            source.select("id", "month"), ["id", "month"], how="left_anti"
        )
        out = work / "parquet_merged"
        shutil.rmtree(out, ignore_errors=True)
        kept.unionByName(source).write.partitionBy("month").parquet(str(out))

    figures: dict[str, dict[str, float]] = {"parquet": {}}
    figures["parquet"]["write"], _ = _timed(write_parquet, args.repeat)
    figures["parquet"]["read full"], expected_full = _timed(
        lambda: _agg(spark.read.parquet(str(parquet_dir))), args.repeat
    )
    figures["parquet"]["read 1 month"], expected_month = _timed(
        lambda: _agg(spark.read.parquet(str(parquet_dir)).filter(F.col("month") == month)),
        args.repeat,
    )
    figures["parquet"]["sql BI query"], expected_sql = _timed(
        lambda: [
            tuple(r)
            for r in spark.sql(
                BI_QUERY.format(table=f"parquet.`{parquet_dir}`", month=month)
            ).collect()
        ],
        args.repeat,
    )
    figures["parquet"]["merge 1%"], _ = _timed(merge_parquet, args.repeat)

    for engine_name in engines:
        if engine_name == "delta-spark":
            if not delta_spark_loaded(spark):
                print("delta-spark: not loaded in this session, skipped", file=sys.stderr)
                continue
            from cardlake.tables.delta_spark import DeltaSparkEngine

            engine: Any = DeltaSparkEngine(spark=spark)
        else:
            engine = DeltaRsEngine(spark=spark)
        tables = Tables(
            spark=spark,
            lake_root=str(work / engine_name),
            engine=engine,
            register_sql=False,
        )
        figures[engine_name] = _bench_engine(
            tables, df, source, args.repeat, month, expected_full, expected_month, expected_sql
        )

    print(f"rows={args.rows:,} months={args.months} repeat={args.repeat} (median seconds)")
    header = f"{'operation':<14}{'parquet':>9}"
    for engine_name in engines:
        if engine_name in figures:
            header += f"{engine_name:>14}{'ratio':>7}"
    print(header)
    for op in ("write", "read full", "read 1 month", "sql BI query", "merge 1%"):
        line = f"{op:<14}{figures['parquet'][op]:>9.2f}"
        for engine_name in engines:
            if engine_name in figures:
                ours = figures[engine_name][op]
                line += f"{ours:>14.2f}{ours / figures['parquet'][op]:>7.2f}"
        print(line)
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
