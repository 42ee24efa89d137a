"""The Thrift JDBC server over a small gold lake, as SQL users meet it: beeline logs in against a
real slapd, the user's group gives the role, analysts see masks, privileged users clear values,
and the guard refuses everything but reading the role's views.

One directory and one server serve the whole module (a server takes most of a minute to start);
every beeline call is a JVM of its own, so each test asks what it needs in one call.
"""

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cardlake.config import PROJECT_ROOT
from cardlake.gold.config import load_gold_config
from cardlake.gold.job import build_gold
from cardlake.governance.directory import Directory, DirectoryUser, free_port
from cardlake.silver.schemas import PARTITIONED_BY_MONTH
from cardlake.tables import Tables
from cardlake.tables.catalog import SQL_LAYERS
from cardlake.tables.delta_rs import DeltaRsEngine
from tests.gold import conftest as silver_rows
from tests.gold.test_build import GOLD
from tests.integration.test_sql_directory import needs_ldap

# Every test logs in through the directory (slapd): on a machine without it they skip, saying so,
# before the module builds its lake.
pytestmark = [pytest.mark.integration, pytest.mark.slow, needs_ldap]

BEELINE = Path(sys.prefix) / "lib" / "python3.11" / "site-packages" / "pyspark" / "bin" / "beeline"
START_TIMEOUT_S, QUERY_TIMEOUT_S, STOP_TIMEOUT_S = 480, 240, 60
LINKING_SLACK_S = 3  # beyond sql_server.refresh_seconds: linking a commit on a loaded machine

ANALYST = DirectoryUser("ana", "ana-secret-1", groups=("cardlake-analysts",))
PRIVILEGED = DirectoryUser("pat", "pat-secret-2", groups=("cardlake-privileged",))
NO_ROLE = DirectoryUser("nemo", "nemo-secret-3", groups=("sales",))
LOGIN_REFUSED = "Error validating the login"
GUARD = "cardlake sql guard:"
C1_WHERE = f"customer_key = '{silver_rows.C1}' AND is_current"


@dataclass(frozen=True)
class Server:
    port: int
    log: Path


@dataclass(frozen=True)
class Answer:
    code: int
    rows: list[dict[str, str]]
    output: str  # stdout and stderr, for the error a refused statement gets


def _beeline(
    server: Server, sql: str, *, user: DirectoryUser | None, password: str | None = None
) -> Answer:
    login = [] if user is None else ["-n", user.uid, "-p", password or user.password]
    result = subprocess.run(
        [
            str(BEELINE),
            "-u",
            f"jdbc:hive2://127.0.0.1:{server.port}",
            *login,
            "--silent=true",
            "--showHeader=true",
            "--outputformat=csv2",
            "-e",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=QUERY_TIMEOUT_S,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines)))) if result.returncode == 0 else []
    return Answer(result.returncode, rows, result.stdout + result.stderr)


def _read(server: Server, sql: str, user: DirectoryUser) -> list[dict[str, str]]:
    answer = _beeline(server, sql, user=user)
    assert answer.code == 0, answer.output[-3000:]
    return answer.rows


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


@pytest.fixture(scope="module")
def gold_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("sql") / "lake"
    tables = Tables(spark=spark, lake_root=str(root), engine=DeltaRsEngine(spark=spark))
    frames = {
        "customer_snapshots": silver_rows.snapshots_rows(),
        "transactions": silver_rows.transactions_rows(),
        "marketing_monthly": silver_rows.marketing_rows(),
        **silver_rows.reference_rows(),
    }
    for name, rows in frames.items():
        by = ["month"] if name in PARTITIONED_BY_MONTH else []
        tables.overwrite(
            f"silver.{name}", silver_rows.silver_df(spark, name, rows), partition_by=by
        )
    build_gold(tables, GOLD, months=list(silver_rows.MONTHS), full=True)
    yield root
    for layer in SQL_LAYERS:
        spark.sql(f"DROP DATABASE IF EXISTS `{layer}` CASCADE")


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    with Directory.start(
        tmp_path_factory.mktemp("slapd"), users=[ANALYST, PRIVILEGED, NO_ROLE]
    ) as started:
        yield started


def _wait_for_port(port: int, server: subprocess.Popen[str], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(
                f"sql server exited early with {server.returncode}:\n" + log.read_text()[-3000:]
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise AssertionError(f"sql server not listening on 127.0.0.1:{port} in {START_TIMEOUT_S}s")


def _start_server(lake: Path, directory: Directory, work: Path, *options: str) -> Iterator[Server]:
    assert BEELINE.is_file(), f"beeline not found at {BEELINE}"
    port = free_port()
    log_path = work / "server.log"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "lib")}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(PROJECT_ROOT / "jobs" / "sql_server.py"),
                "--env",
                "test",
                "--lake-root",
                str(lake),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--ldap-url",
                directory.url,
                *options,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=str(work),
            start_new_session=True,
        )
        try:
            _wait_for_port(port, process, log_path, time.monotonic() + START_TIMEOUT_S)
            yield Server(port=port, log=log_path)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise
    assert code == 0, log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def server(
    gold_lake: Path, directory: Directory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from _start_server(gold_lake, directory, tmp_path_factory.mktemp("sql-server"))


@pytest.mark.parametrize(
    ("user", "password"),
    [(None, None), (ANALYST, "not-her-password"), (DirectoryUser("mallory", "x"), None)],
    ids=["no-credentials", "wrong-password", "unknown-user"],
)
def test_login_is_refused_without_valid_credentials(
    server: Server, user: DirectoryUser | None, password: str | None
):
    answer = _beeline(server, "SELECT 1 AS one;", user=user, password=password)
    assert answer.code != 0
    assert LOGIN_REFUSED in answer.output, answer.output[-2000:]


def test_user_of_no_mapped_group_reads_nothing(server: Server):
    answer = _beeline(server, "SELECT tx_count FROM gold.kpi_monthly;", user=NO_ROLE)
    assert answer.code != 0
    assert f"{GUARD} user nemo has no Cardlake role" in answer.output, answer.output[-2000:]


def test_analyst_sees_masked_values_only(server: Server):
    rows = _read(
        server,
        "SELECT first_name, last_name, email, date_of_birth, city, country "
        f"FROM gold.dim_customer WHERE {C1_WHERE};",
        ANALYST,
    )
    assert rows == [
        {
            "first_name": "A.",
            "last_name": "L.",
            "email": "C***@x.io",
            "date_of_birth": "1990",
            "city": "[redacted]",
            "country": "GB",
        }
    ]
    refused = _beeline(
        server, f"SELECT email FROM gold_clear.dim_customer WHERE {C1_WHERE};", user=ANALYST
    )
    assert refused.code != 0
    assert f"{GUARD} role analyst may not read gold_clear.dim_customer" in refused.output


def test_privileged_sees_clear_values(server: Server):
    rows = _read(
        server,
        "SELECT first_name, last_name, email, date_of_birth, city "
        f"FROM gold_clear.dim_customer WHERE {C1_WHERE};",
        PRIVILEGED,
    )
    assert rows == [
        {
            "first_name": "Ann",
            "last_name": "Lee",
            "email": "CK00000000c1@x.io",
            "date_of_birth": "1990-06-15",
            "city": "London",
        }
    ]


def test_kpis_over_jdbc_match_silver(server: Server):
    rows = _read(
        server,
        "SELECT month, tx_count, completed_count, round(completed_value_usd, 2) AS value "
        "FROM gold.kpi_monthly ORDER BY month;",
        ANALYST,
    )
    actual = {
        r["month"]: (int(r["tx_count"]), int(r["completed_count"]), float(r["value"])) for r in rows
    }
    assert actual == _expected_from_silver()
    joined = _read(
        server,
        "SELECT c.plan_type, count(*) AS n FROM gold.fact_transactions t "
        "JOIN gold.dim_customer c ON t.customer_sk = c.customer_sk "
        "GROUP BY c.plan_type ORDER BY c.plan_type;",
        ANALYST,
    )
    # C1's January payments under its standard version, March's under premium; C2 standard;
    # the payment without a customer joins the unknown member (plan NULL).
    by_plan = {r["plan_type"]: int(r["n"]) for r in joined}
    assert by_plan == {"NULL": 1, "premium": 1, "standard": 5}


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        (
            "SELECT reflect('java.lang.System', 'getProperty', 'user.home');",
            f"{GUARD} function reflect is disabled",
        ),
        (
            "SELECT java_method('java.lang.System', 'getenv', 'HOME');",
            f"{GUARD} function java_method is disabled",
        ),
        ("SELECT * FROM parquet.`/etc/ssl`;", "TABLE_OR_VIEW_NOT_FOUND"),
        ("SELECT * FROM _lake_gold.dim_customer;", f"{GUARD} role privileged may read only"),
        ("SET spark.sql.runSQLOnFiles=true;", f"{GUARD} SQL users may only read; SetCommand"),
        ("ADD JAR /tmp/evil.jar;", f"{GUARD} SQL users may only read; AddJarsCommand"),
    ],
    ids=["reflect", "java_method", "file-path", "raw-schema", "set", "add-jar"],
)
def test_guard_refuses_even_privileged_users(server: Server, sql: str, error: str):
    answer = _beeline(server, sql, user=PRIVILEGED)
    assert answer.code != 0
    assert error in answer.output, answer.output[-2000:]


def test_delta_rs_server_reads_new_commits_through_masks_and_guard(
    spark: SparkSession,
    gold_lake: Path,
    directory: Directory,
    tmp_path_factory: pytest.TempPathFactory,
):
    # The embedded engine's server scans linked snapshots as plain Parquet (no Delta connector):
    # masks and the guard hold there too, and a commit shows within sql_server.refresh_seconds.
    tables = Tables(spark=spark, lake_root=str(gold_lake), engine=DeltaRsEngine(spark=spark))
    probe = spark.createDataFrame([("2024-01", 1)], "month string, tx_count int")
    tables.overwrite("gold.refresh_probe", probe, partition_by=["month"])
    started = _start_server(
        gold_lake,
        directory,
        tmp_path_factory.mktemp("sql-server-rs"),
        "--set",
        "tables.engine=delta-rs",
    )
    server = next(started)
    try:
        rows = _read(
            server,
            f"SELECT first_name, email, date_of_birth FROM gold.dim_customer WHERE {C1_WHERE};",
            ANALYST,
        )
        assert rows == [{"first_name": "A.", "email": "C***@x.io", "date_of_birth": "1990"}]
        refused = _beeline(server, "SELECT * FROM _lake_gold.dim_customer;", user=PRIVILEGED)
        assert refused.code != 0
        assert f"{GUARD} role privileged may not read _lake_gold.dim_customer" in refused.output
        tables.append("gold.refresh_probe", spark.createDataFrame([("2024-02", 2)], probe.schema))
        committed = time.monotonic()
        # The bound is the assertion: once it has passed, the next read must see the commit.
        time.sleep(load_gold_config("test").sql_server.refresh_seconds + LINKING_SLACK_S)
        rows = _read(
            server, "SELECT month, tx_count FROM gold.refresh_probe ORDER BY month;", ANALYST
        )
        assert rows == [
            {"month": "2024-01", "tx_count": "1"},
            {"month": "2024-02", "tx_count": "2"},
        ], time.monotonic() - committed
    finally:
        next(started, None)
