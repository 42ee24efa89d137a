"""The Thrift JDBC server serves gold over HiveServer2: beeline asks, silver says what's right."""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cardlake.config import PROJECT_ROOT
from cardlake.gold.job import build_gold
from cardlake.silver.schemas import PARTITIONED_BY_MONTH
from cardlake.tables import Tables
from cardlake.tables.catalog import SQL_LAYERS
from cardlake.tables.delta_rs import DeltaRsEngine
from tests.gold import conftest as silver_rows
from tests.gold.test_build import GOLD

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BEELINE = Path(sys.prefix) / "lib" / "python3.11" / "site-packages" / "pyspark" / "bin" / "beeline"
START_TIMEOUT_S, QUERY_TIMEOUT_S, STOP_TIMEOUT_S = 240, 240, 60


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, server: subprocess.Popen[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"sql server exited early with {server.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise AssertionError(f"sql server not listening on 127.0.0.1:{port} in {START_TIMEOUT_S}s")


def _beeline(port: int, sql: str) -> list[dict[str, str]]:
    result = subprocess.run(
        [str(BEELINE), "-u", f"jdbc:hive2://127.0.0.1:{port}", "--silent=true",
         "--showHeader=true", "--outputformat=csv2", "-e", sql],
        capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def _expected_from_silver() -> dict[str, tuple[int, int, float]]:
    # Computed from the silver rows themselves: (transactions, completed, completed USD value).
    out: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for row in silver_rows.transactions_rows():
        totals = out[row["month"]]
        totals[0] += 1
        if row["state"] == "completed":
            totals[1] += 1
            totals[2] += row["amount_usd"]
    return {m: (int(t[0]), int(t[1]), round(t[2], 2)) for m, t in out.items()}


@pytest.fixture
def gold_lake(spark: SparkSession, tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    tables = Tables(spark=spark, lake_root=str(root), engine=DeltaRsEngine(spark=spark))
    frames = {
        "customer_snapshots": silver_rows.snapshots_rows(),
        "transactions": silver_rows.transactions_rows(),
        "marketing_monthly": silver_rows.marketing_rows(),
        **silver_rows.reference_rows(),
    }
    for name, rows in frames.items():
        by = ["month"] if name in PARTITIONED_BY_MONTH else []
        tables.overwrite(f"silver.{name}", silver_rows.silver_df(spark, name, rows),
                         partition_by=by)
    build_gold(tables, GOLD, months=list(silver_rows.MONTHS), full=True)
    yield root
    for layer in SQL_LAYERS:
        spark.sql(f"DROP DATABASE IF EXISTS `{layer}` CASCADE")


def test_kpis_over_jdbc_match_silver(gold_lake: Path, tmp_path: Path):
    assert BEELINE.is_file(), f"beeline not found at {BEELINE}"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "lib")}
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "jobs" / "sql_server.py"), "--env", "test",
         "--lake-root", str(gold_lake), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(tmp_path),
    )
    try:
        _wait_for_port(port, server, time.monotonic() + START_TIMEOUT_S)
        rows = _beeline(
            port,
            "SELECT month, tx_count, completed_count, round(completed_value_usd, 2) AS value "
            "FROM gold.kpi_monthly ORDER BY month;",
        )
        actual = {r["month"]: (int(r["tx_count"]), int(r["completed_count"]), float(r["value"]))
                  for r in rows}
        assert actual == _expected_from_silver()
        joined = _beeline(
            port,
            "SELECT c.plan_type, count(*) AS n FROM gold.fact_transactions t "
            "JOIN gold.dim_customer c ON t.customer_sk = c.customer_sk "
            "GROUP BY c.plan_type ORDER BY c.plan_type;",
        )
        # C1's January payments under its standard version, March's under premium; C2 standard;
        # the payment without a customer joins the unknown member (plan NULL).
        by_plan = {r["plan_type"]: int(r["n"]) for r in joined}
        assert by_plan == {"NULL": 1, "premium": 1, "standard": 5}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise
        log.close()
    assert code == 0, (tmp_path / "server.log").read_text()[-3000:]
