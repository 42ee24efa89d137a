"""A BI query over JDBC: gold on Delta through `make sql-server` against plain Parquet, same server.

    python bench/bench_sql.py --transactions 10000000 --repeat 5

Synthesises ``gold.fact_transactions``-shaped rows (seeded) into plain Parquet, partitioned by
month, and copies the same rows into a Delta table of a lake. For each engine it starts
``jobs/sql_server.py`` over that lake (LDAP against a throwaway slapd, the guard on), with the
Parquet folder published beside the lake's table as ``gold.fact_transactions_parquet`` through
the same masks, and runs the BI query (one month, completed payments, grouped by channel and
merchant country) as an analyst in one beeline session: ``--warmup`` runs of each (a BI server
runs for days; its first queries also pay for class loading, code generation and Delta's first
snapshot, and the Delta side was still getting faster over the fifth run), then the two
alternately. The times are beeline's own per statement (execute and fetch, without its JVM
start). Prints the median of each and the ratio Delta / Parquet per engine, last.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cardlake.config import PROJECT_ROOT, load_config
from cardlake.governance.directory import Directory, DirectoryUser, free_port
from cardlake.months import shift
from cardlake.spark import build_logged_session, delta_spark_loaded
from cardlake.tables import Tables

SEED = 20240101
START, N_MONTHS = "2024-01", 12
QUERY_MONTH = "2024-06"
CHANNELS = ["POS", "POS", "POS", "ONLINE", "ONLINE", "ATM", "P2P", "TOPUP", "FX", "CRYPTO"]
STATES = ["completed"] * 17 + ["failed", "declined", "pending"]
COUNTRIES = ["GB", "DE", "FR", "ES", "IT", "NL", "PL", "US", "IE", "PT", "SE", "RO"]
ANALYST = DirectoryUser("bench", "bench-password", groups=("cardlake-analysts",))
BEELINE = Path(sys.prefix) / "lib" / "python3.11" / "site-packages" / "pyspark" / "bin" / "beeline"
START_TIMEOUT_S, QUERY_TIMEOUT_S = 600, 1800
ENGINES = ("delta-spark", "delta-rs")
TIMING = re.compile(r"rows? selected \(([0-9.]+) seconds\)")
ANSWER_ROW = re.compile(r"^[A-Z0-9]+,[A-Z]{2},[0-9]+,[0-9.E-]+,[0-9.E-]+$")


def bi_query(view: str) -> str:
    """The dashboard tile: one month's completed payments by channel and merchant country."""
    return (
        "SELECT channel, merchant_country AS country, count(*) AS transactions, "
        "round(sum(amount_usd), 2) AS value_usd, round(sum(revenue_usd), 2) AS revenue_usd "
        f"FROM {view} WHERE month = '{QUERY_MONTH}' AND state = 'completed' "
        "GROUP BY channel, merchant_country ORDER BY channel, country;"
    )


def synthesise(spark: SparkSession, n: int, folder: Path) -> None:
    """``n`` fact rows over N_MONTHS months, as plain Parquet partitioned by month."""
    months = [shift(START, k) for k in range(N_MONTHS)]

    def pick(values: list[str], seed: int) -> F.Column:
        arr = F.array(*[F.lit(v) for v in values])
        return F.element_at(arr, (F.floor(F.rand(seed) * len(values)) + 1).cast("int"))

    month = pick(months, SEED)
    day = (F.floor(F.rand(SEED + 1) * 28) + 1).cast("int")
    txn_date = F.make_date(
        F.substring(month, 1, 4).cast("int"), F.substring(month, 6, 2).cast("int"), day
    )
    amount_usd = F.round(F.exp(F.randn(SEED + 2) + 3.5), 2)
    fee = F.when(F.rand(SEED + 3) < 0.3, F.lit(0.25)).otherwise(F.lit(0.0))
    facts = spark.range(n).select(
        F.format_string("TX%012d", F.col("id")).alias("transaction_id"),
        F.floor(F.rand(SEED + 4) * (n // 100 + 1)).cast("long").alias("customer_sk"),
        F.format_string("CK%010d", F.floor(F.rand(SEED + 4) * (n // 100 + 1)).cast("long")).alias(
            "customer_key"
        ),
        txn_date.alias("txn_date"),
        amount_usd.alias("amount_usd"),
        pick(CHANNELS, SEED + 5).alias("channel"),
        F.when(F.rand(SEED + 6) < 0.85, "debit").otherwise("credit").alias("direction"),
        pick(STATES, SEED + 7).alias("state"),
        pick(COUNTRIES, SEED + 8).alias("merchant_country"),
        pick(COUNTRIES, SEED + 9).alias("customer_country"),
        (F.rand(SEED + 10) < 0.08).alias("is_night"),
        fee.alias("fee_usd"),
        month.alias("month"),
    )
    facts = facts.select(
        "transaction_id",
        "customer_sk",
        F.date_format("txn_date", "yyyyMMdd").cast("int").alias("date_sk"),
        "customer_key",
        F.col("txn_date").cast("timestamp").alias("ts"),
        "amount_usd",
        "channel",
        "direction",
        "state",
        "merchant_country",
        "customer_country",
        "is_night",
        (F.col("merchant_country") != F.col("customer_country")).alias("is_cross_border"),
        "fee_usd",
        (F.col("fee_usd") + F.col("amount_usd") * 0.001).alias("revenue_usd"),
        "month",
    )
    facts.write.mode("overwrite").partitionBy("month").parquet(str(folder))


def build_lake(root: Path, transactions: int) -> tuple[Path, Path]:
    """The Parquet folder, and a lake whose gold.fact_transactions holds the same rows."""
    parquet = root / "parquet" / "fact_transactions"
    lake = root / "lake"
    cfg = load_config("local", overrides={"paths.lake_root": str(lake), "spark.profile": "large"})
    spark = build_logged_session(cfg, command="bench-sql")
    try:
        started = time.perf_counter()
        synthesise(spark, transactions, parquet)
        engine_name = "delta-spark" if delta_spark_loaded(spark) else "delta-rs"
        if engine_name == "delta-spark":
            from cardlake.tables.delta_spark import DeltaSparkEngine

            engine = DeltaSparkEngine(spark=spark)
        else:
            from cardlake.tables.delta_rs import DeltaRsEngine

            engine = DeltaRsEngine(spark=spark)
        tables = Tables(spark=spark, lake_root=str(lake), engine=engine)
        tables.overwrite(
            "gold.fact_transactions", spark.read.parquet(str(parquet)), partition_by=["month"]
        )
        print(
            f"data: {transactions:,} rows, {N_MONTHS} months, written as Parquet and as Delta "
            f"({engine_name}) in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    finally:
        spark.stop()
    return parquet, lake


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"sql server exited with {process.returncode}:\n" + log.read_text()[-3000:]
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise RuntimeError(
        f"sql server not listening on 127.0.0.1:{port} in {START_TIMEOUT_S} s; log: {log}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def bench_engine(
    engine: str,
    *,
    lake: Path,
    parquet: Path,
    directory: Directory,
    repeat: int,
    warmup: int,
    work: Path,
) -> tuple[list[float], list[float]]:
    """Times of the BI query on Delta and on Parquet through one server on ``engine``."""
    port = free_port()
    log = work / f"server-{engine}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                str(PROJECT_ROOT / "jobs" / "sql_server.py"),
                "--env",
                "local",
                "--lake-root",
                str(lake),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--ldap-url",
                directory.url,
                "--set",
                f"tables.engine={engine}",
                "--set",
                "spark.profile=large",
                "--parquet-view",
                f"gold.fact_transactions_parquet={parquet}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(work),
            start_new_session=True,
        )
    try:
        _wait_ready(port, process, log)
        delta = bi_query("gold.fact_transactions")
        plain = bi_query("gold.fact_transactions_parquet")
        script = [delta, plain] * (warmup + repeat)  # warm-ups, then the timed runs
        result = subprocess.run(
            [
                str(BEELINE),
                "-u",
                f"jdbc:hive2://127.0.0.1:{port}",
                "-n",
                ANALYST.uid,
                "-p",
                ANALYST.password,
                "--outputformat=csv2",
                "-e",
                " ".join(script),
            ],
            capture_output=True,
            text=True,
            timeout=QUERY_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"beeline failed on {engine}:\n{result.stderr[-3000:]}")
        (work / f"beeline-{engine}.out").write_text(result.stdout)
        times = [float(t) for t in TIMING.findall(result.stdout + result.stderr)]
        if len(times) != len(script):
            raise RuntimeError(f"expected {len(script)} timings from beeline, got {len(times)}")
        answers = _answers(result.stdout)
        # Sums of doubles in another order may differ in the last cent: compared rounded.
        if len(answers) != len(script) or len(set(answers)) != 1 or not answers[0]:
            raise RuntimeError(
                f"{engine}: Delta and Parquet answered differently (or not at "
                f"all); beeline's output: {work / f'beeline-{engine}.out'}"
            )
        print(f"{engine}: {len(answers[0])} groups, the same answer from both", flush=True)
        timed = times[2 * warmup :]
        return timed[0::2], timed[1::2]
    finally:
        _stop(process)


def _answers(stdout: str) -> list[tuple[str, ...]]:
    # Each result set starts with its header line; its rows are the lines that look like one.
    blocks = stdout.split("channel,country,transactions,value_usd,revenue_usd")[1:]
    return [
        tuple(
            _rounded(line.strip()) for line in block.splitlines() if ANSWER_ROW.match(line.strip())
        )
        for block in blocks
    ]


def _rounded(row: str) -> str:
    channel, country, count, value, revenue = row.split(",")
    return f"{channel},{country},{count},{float(value):.0f},{float(revenue):.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each query first")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--keep", type=Path, help="build the data here and keep it (reused)")
    args = parser.parse_args(argv)
    command = "python bench/bench_sql.py " + " ".join(argv if argv is not None else sys.argv[1:])
    work = args.keep or Path(tempfile.mkdtemp(prefix="cardlake-bench-sql-"))
    try:
        parquet, lake = work / "parquet" / "fact_transactions", work / "lake"
        if not (lake / "gold" / "fact_transactions" / "_delta_log").is_dir():
            parquet, lake = build_lake(work, args.transactions)
        results: dict[str, tuple[float, float]] = {}
        shutil.rmtree(work / "slapd", ignore_errors=True)  # slapadd loads a new directory only
        with Directory.start(work / "slapd", users=[ANALYST]) as directory:
            for engine in args.engines.split(","):
                try:
                    delta, plain = bench_engine(
                        engine,
                        lake=lake,
                        parquet=parquet,
                        directory=directory,
                        repeat=args.repeat,
                        warmup=args.warmup,
                        work=work,
                    )
                except RuntimeError as exc:
                    print(f"{engine}: not measured: {exc}", flush=True)
                    continue
                print(
                    f"{engine}: Delta {[round(t, 2) for t in delta]} s, "
                    f"Parquet {[round(t, 2) for t in plain]} s",
                    flush=True,
                )
                results[engine] = (statistics.median(delta), statistics.median(plain))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{command}")
    print(
        f"BI query over JDBC ({args.transactions:,} fact rows, month {QUERY_MONTH}, "
        f"median of {args.repeat} after {args.warmup} warm-ups); "
        "goal <= 1.2 on delta-spark, <= 1.5 on delta-rs"
    )
    for engine, (delta, plain) in results.items():
        print(
            f"  {engine:12s} Delta {delta:6.2f} s   Parquet {plain:6.2f} s   "
            f"ratio {delta / plain:.2f}"
        )
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
