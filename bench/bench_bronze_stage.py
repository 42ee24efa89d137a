"""The whole bronze stage on a landing zone, per source, under one session profile.

    .venv/bin/python bench/bench_bronze_stage.py [--profile local] [--landing data/landing]
        [--sources card_transactions ...]

Ingests every source of the landing zone (``make run`` writes the embedded default to
``data/landing``) into a fresh lake with the configured engine, as the pipeline does, and prints
each source's seconds with its steps (``SourceReport.seconds``) and the time spent in table
writes and Great Expectations. Run it once per
profile on an idle machine to compare settings (``--profile large`` against ``--profile local``).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
import time
from typing import Any

from cardlake.bronze import ingest
from cardlake.bronze.stage import run as run_bronze
from cardlake.config import load_config
from cardlake.pipeline import settings_for
from cardlake.spark import build_logged_session
from cardlake.tables import Tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="local", choices=["local", "large", "test"])
    parser.add_argument("--landing", default=None, help="landing root (default: from conf)")
    parser.add_argument("--sources", nargs="*", default=None, help="only these (default: all)")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="bench_bronze_stage_")
    overrides: dict[str, Any] = {"paths.lake_root": work, "spark.profile": args.profile}
    if args.landing:
        overrides["paths.landing_root"] = args.landing
    cfg = load_config("local", overrides=overrides)
    started = time.perf_counter()
    spark = build_logged_session(cfg, command="bench-bronze-stage")
    print(f"profile {args.profile}: session in {time.perf_counter() - started:.1f}s")
    spent: collections.Counter[str] = collections.Counter()

    def timed(label: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[label(*a) if callable(label) else label] += time.perf_counter() - t0

        return wrapper

    ingest_source = ingest.ingest_source

    def per_source(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        report = ingest_source(*a, **k)
        print(
            f"  {report.source:22} {time.perf_counter() - t0:7.1f}s  "
            f"{report.rows_read:>8,} records  "
            + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items() if v >= 0.05),
            flush=True,
        )
        return report

    ingest.ingest_source = per_source  # type: ignore[assignment]
    Tables.append = timed(
        lambda self, name, *a: "write " + name.split(".")[0],  # type: ignore[method-assign]
        Tables.append,
    )
    ingest.Validator.validate = timed("great expectations", ingest.Validator.validate)  # type: ignore[method-assign]
    try:
        tables = Tables.from_config(spark, cfg)
        t0 = time.perf_counter()
        run_bronze(tables, settings_for(cfg), month=None, sources=args.sources)
        print(f"bronze {time.perf_counter() - t0:.1f}s; of it:")
        for label, seconds in spent.most_common():
            print(f"  {label:22} {seconds:7.1f}s")
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
