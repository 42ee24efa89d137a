"""Bronze ingest throughput per format against Spark reading the same files with no checks.

    .venv/bin/python bench/bench_bronze.py [--landing data/landing] [--repeat 1]

For each format one source's files (all months) are ingested into a fresh lake with the full
bronze path (parse, checks, references, dedupe, GE suite, Delta writes, manifest), and read by
plain Spark (CSV/JSON/XML readers with inference off where they allow, text for logs) with a
``count()``. Prints MB/s, rows/s and bronze/plain as a ratio. Not a timed test: a benchmark.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

from cardlake.bronze import CONTRACTS, discover, ingest_source, load_bronze_config
from cardlake.config import load_config
from cardlake.quality import Validator
from cardlake.spark import build_session
from cardlake.tables import Tables
from cardlake.tables.delta_rs import DeltaRsEngine

CASES = {  # format -> (source, plain Spark reader)
    "csv": ("product_usage", lambda r, p: r.option("header", True).csv(p)),
    "jsonl": ("financial_records", lambda r, p: r.json(p)),
    "xml": ("demographics", lambda r, p: r.format("xml").option("rowTag", "person").load(p)),
    "txt": ("service_interactions", lambda r, p: r.text(p)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", default=None, help="landing root (default: from conf)")
    parser.add_argument("--env", default="local")
    args = parser.parse_args()
    cfg = load_config(args.env)
    landing = args.landing or cfg.paths.landing_root
    settings = load_bronze_config(args.env)
    spark = build_session(cfg)
    print(
        f"{'format':6} {'source':22} {'MB':>6} {'rows':>7} | {'bronze MB/s':>11} "
        f"{'rows/s':>8} | {'plain MB/s':>10} {'rows/s':>8} | ratio"
    )
    for fmt, (source, reader) in CASES.items():
        files = discover(landing, source, key=b"bench")
        paths = [f.abs_path for f in files]
        mb = sum(f.size for f in files) / 1e6
        t0 = time.perf_counter()
        rows_plain = reader(spark.read, paths).count()
        plain = time.perf_counter() - t0
        root = tempfile.mkdtemp(prefix="bench_bronze_")
        try:
            tables = Tables(
                spark=spark, lake_root=root, engine=DeltaRsEngine(spark=spark), register_sql=False
            )
            t0 = time.perf_counter()
            report = ingest_source(
                spark,
                tables,
                CONTRACTS[source],
                settings,
                token_key=b"bench",
                files=files,
                validator=Validator(),
            )
            bronze = time.perf_counter() - t0
        finally:
            shutil.rmtree(root, ignore_errors=True)
        rows = report.rows_read
        print(
            f"{fmt:6} {source:22} {mb:6.2f} {rows:7d} | {mb / bronze:11.2f} "
            f"{rows / bronze:8.0f} | {mb / plain:10.2f} {rows_plain / plain:8.0f} | "
            f"{plain / bronze:.3f}"
        )
    spark.stop()


if __name__ == "__main__":
    main()
