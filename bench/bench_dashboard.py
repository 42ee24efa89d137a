"""Time to first render of each dashboard page, in Debian's Chromium, on a built lake.

Starts the dashboard as ``make dashboard`` does (its own process on a free loopback port), then
for each page: a fresh browser context (empty cache) navigates to it and the clock stops when
the page's title and its charts or tables are drawn and the network is idle. Each page is
measured ``--runs`` times; the first run of the whole session also pays the app's JS bundle.

With ``--compare-spark`` it also times the portfolio page's queries through Spark (the table
layer's reads) against DuckDB over the delta-rs snapshot, the path the dashboard takes.

    python bench/bench_dashboard.py --lake-root lake [--runs 3] [--compare-spark]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("/", "/segments", "/risk", "/customer", "/live", "/experiment", "/quality")
GOAL_S = 1.5
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DRAWN = """() => {
  const page = document.querySelector('#page-title');
  if (!page) return false;
  if (document.querySelector('._dash-loading, .dash-spinner')) return false;
  return [...document.querySelectorAll('.js-plotly-plot')].every(g => g.querySelector('.main-svg'));
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(lake_root: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "jobs" / "dashboard.py"), "--lake-root", lake_root,
         "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dashboard exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise SystemExit("dashboard not ready in 120 s")


def _visit(page: object, url: str) -> float:
    started = time.perf_counter()
    page.goto(url)  # type: ignore[attr-defined]
    page.wait_for_function(DRAWN, timeout=60_000, polling=20)  # type: ignore[attr-defined]
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
    return time.perf_counter() - started


def time_pages(url: str, key: str | None, runs: int) -> dict[str, dict[str, list[float]]]:
    """Per page: ``cold`` (a new browser context: empty cache, the app's JS bundle fetched) and
    ``warm`` (a context that has opened the app before, as a user moving between pages)."""
    from playwright.sync_api import sync_playwright

    out: dict[str, dict[str, list[float]]] = {p: {"cold": [], "warm": []} for p in PAGES}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            warm = browser.new_context(viewport={"width": 1400, "height": 1000})
            warm_page = warm.new_page()
            _visit(warm_page, url + "/")  # primes the cache with the app's bundle
            for _ in range(runs):
                for path in PAGES:
                    target = url + (f"{path}?key={key}" if path == "/customer" and key else path)
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    out[path]["cold"].append(_visit(context.new_page(), target))
                    context.close()
                    out[path]["warm"].append(_visit(warm_page, target))
            warm.close()
        finally:
            browser.close()
    return out


def compare_spark(lake_root: str) -> tuple[float, float]:
    """Seconds for the portfolio's queries: DuckDB over delta-rs vs Spark (session excluded)."""
    from cardlake.serve import data
    from cardlake.serve.lake import Lake

    def duck() -> None:
        lake = Lake(lake_root)
        month = data.months(lake)[-1]
        data.kpi_monthly(lake)
        data.by_channel(lake, month)
        data.by_country(lake, month)
        data.plan_mix(lake)

    started = time.perf_counter()
    duck()
    duck_s = time.perf_counter() - started

    from pyspark.sql import functions as F

    from cardlake.config import load_config
    from cardlake.spark import build_session
    from cardlake.tables import Tables

    cfg = load_config("local", overrides={"paths.lake_root": lake_root,
                                          "spark.driver_memory": "2g"})
    spark = build_session(cfg)
    tables = Tables.from_config(spark, cfg)
    started = time.perf_counter()
    kpis = tables.read("gold.kpi_monthly").toPandas()
    month = sorted(kpis["month"])[-1]
    tables.read("gold.fact_transactions").where(F.col("month") == month).groupBy(
        "channel").agg(F.count(F.lit(1)), F.sum("amount_usd")).toPandas()
    tables.read("gold.kpi_country_monthly").where(F.col("month") == month).toPandas()
    tables.read("gold.kpi_plan_monthly").toPandas()
    spark_s = time.perf_counter() - started
    spark.stop()
    return duck_s, spark_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake-root", default=str(ROOT / "lake"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--customer-key", help="customer for the 360 page (default: the first)")
    parser.add_argument("--compare-spark", action="store_true")
    args = parser.parse_args()
    key = args.customer_key
    if key is None:
        from cardlake.serve.lake import Lake

        first = Lake(args.lake_root).query("select min(customer_key) as k from c",
                                           c="silver.customers")
        key = str(first["k"].iloc[0])
    port = free_port()
    proc = start(args.lake_root, port)
    try:
        times = time_pages(f"http://127.0.0.1:{port}", key, args.runs)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    if args.compare_spark:
        duck_s, spark_s = compare_spark(args.lake_root)
        print(f"portfolio queries: DuckDB over delta-rs {duck_s:.2f} s, Spark {spark_s:.2f} s "
              f"(Spark / DuckDB = {spark_s / duck_s:.1f}x; Spark session start not counted)")
    print(f"first render per page, {args.runs} runs, lake {args.lake_root} (goal <= {GOAL_S} s)")
    print(f"{'page':<12} {'cold median':>12} {'warm median':>12} {'warm max':>9}  goal (warm)")
    for path, secs in times.items():
        cold, warm = statistics.median(secs["cold"]), statistics.median(secs["warm"])
        print(f"{path:<12} {cold:>11.2f}s {warm:>11.2f}s {max(secs['warm']):>8.2f}s  "
              f"{'ok' if warm <= GOAL_S else 'OVER'}")
    print(f"command: python bench/bench_dashboard.py --lake-root {args.lake_root} "
          f"--runs {args.runs}{' --compare-spark' if args.compare_spark else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
