"""A tiny hand-made lake (delta-rs writes, no Spark) whose every figure is known by heart, and
the dashboard started as its own process on a free loopback port, as ``make dashboard`` does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_DEADLINE_S = 60.0
ARTEFACTS = ROOT / "tests" / "artefacts" / "serve"

MONTHS = [f"2024-{m:02d}" for m in range(1, 13)] + ["2025-01"]


def kpi_row(i: int, month: str) -> dict[str, object]:
    """Month ``i``'s KPIs: simple formulas so every figure is known (2025-01 is i = 12)."""
    tx = 1000 + 10 * i
    completed = tx - 50
    return {
        "month": month,
        "tx_count": tx,
        "tx_value_usd": 50_000.0 + 1000 * i,
        "completed_count": completed,
        "completed_value_usd": 45_000.0 + 900 * i,
        "success_rate": completed / tx,
        "fee_revenue_usd": 500.0 + 10 * i,
        "fx_margin_usd": 100.0 + i,
        "revenue_usd": 600.0 + 11 * i,
        "customers": 200 + i,
        "active_customers": 150 + i,
        "active_cards": 240 + i,
        "new_customers": 5,
        "notifications_sent": 400 + i,
        "notifications_failed": 20,
        "notification_fail_rate": 20 / (400 + i),
        "fraud_reported_count": 3,
        "fraud_rate": 3 / tx,
        "fraud_alert_count": None,
    }


RISK = [  # customer_key, score, tier, reasons
    ("CK-A", 710, "High", ["debt", "inactivity"]),
    ("CK-B", 650, "Medium", ["spend spike"]),
    ("CK-C", 745, "High", ["fraud history", "low credit score"]),
    ("CK-D", 400, "Low", []),
    ("CK-E", 690, "Medium", ["failed transactions", "debt"]),
]

CUSTOMERS = [
    (
        "CK-A",
        "Aoife",
        "Santos",
        "aoife.santos@example.com",
        "+353 87 123 4567",
        date(1983, 10, 7),
        "IE",
    ),
    ("CK-B", "Bram", "de Vries", "bram@example.nl", "+31 6 12345678", date(1990, 1, 2), "NL"),
    ("CK-C", "Chen", "Wei", "chen.wei@example.com", "+44 7700 900123", date(1975, 5, 5), "GB"),
]


def write_tiny_lake(root: Path) -> None:
    write_deltalake(
        str(root / "gold" / "kpi_monthly"),
        pa.Table.from_pylist([kpi_row(i, m) for i, m in enumerate(MONTHS)]),
        partition_by=["month"],
    )
    tx = [
        {
            "transaction_id": f"T{i}",
            "month": "2025-01",
            "channel": ch,
            "state": st,
            "amount_usd": amt,
            "fee_usd": fee,
            "fx_margin_usd": 0.0,
        }
        for i, (ch, st, amt, fee) in enumerate(
            [
                ("online", "completed", 100.0, 1.0),
                ("online", "failed", 50.0, 0.0),
                ("pos", "completed", 20.0, 0.5),
                ("atm", "completed", 200.0, 2.0),
                ("pos", None, 10.0, 0.0),
            ]
        )
    ]
    write_deltalake(
        str(root / "gold" / "fact_transactions"), pa.Table.from_pylist(tx), partition_by=["month"]
    )
    risk = [
        {
            "customer_key": k,
            "month": "2025-01",
            "risk_score": s,
            "tier": t,
            "reasons": r,
            "at_risk_probability": s / 1000,
            "model_version": "1",
        }
        for k, s, t, r in RISK
    ]
    write_deltalake(
        str(root / "gold" / "customer_risk"),
        pa.Table.from_pylist(
            risk,
            schema=pa.schema(
                [
                    ("customer_key", pa.string()),
                    ("month", pa.string()),
                    ("risk_score", pa.int32()),
                    ("tier", pa.string()),
                    ("reasons", pa.list_(pa.string())),
                    ("at_risk_probability", pa.float64()),
                    ("model_version", pa.string()),
                ]
            ),
        ),
        partition_by=["month"],
    )
    customers = [
        {
            "customer_key": k,
            "first_name": f,
            "last_name": la,
            "email": e,
            "phone": p,
            "date_of_birth": d,
            "country": c,
        }
        for k, f, la, e, p, d, c in CUSTOMERS
    ]
    write_deltalake(str(root / "silver" / "customers"), pa.Table.from_pylist(customers))
    # a bronze source to profile: one email missing of five, one amount far outside the IQR
    crm = pa.table(
        {
            "crm_id": ["C1", "C2", "C3", "C4", "C5"],
            "first_name": ["Aoife", "Bram", "Chen", "Dana", "Eve"],
            "email": ["a@x.ie", None, "c@x.uk", "d@x.de", "e@x.fr"],
            "amount": [1.0, 2.0, 3.0, 4.0, 100.0],
        }
    )
    write_deltalake(str(root / "bronze" / "crm_customers"), crm)


@pytest.fixture(scope="session")
def tiny_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve") / "lake"
    write_tiny_lake(root)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Dashboard:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


@pytest.fixture(scope="session")
def start_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Starts ``jobs/dashboard.py`` (what ``make dashboard`` runs) on a free loopback port;
    waits for its health endpoint with a deadline; stops the process group at session end."""
    started: list[Dashboard] = []

    def start(
        lake_root: Path, *, role: str = "analyst", reports_dir: Path | None = None
    ) -> Dashboard:
        port = free_port()
        log_path = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
        args = [
            sys.executable,
            str(ROOT / "jobs" / "dashboard.py"),
            "--env",
            "test",
            "--lake-root",
            str(lake_root),
            "--port",
            str(port),
            "--role",
            role,
        ]
        if reports_dir is not None:
            args += ["--reports-dir", str(reports_dir)]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        url = f"http://127.0.0.1:{port}"
        board = Dashboard(url=url, process=proc, log_path=log_path)
        started.append(board)
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"dashboard exited with {proc.returncode}:\n" + log_path.read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return board
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"dashboard not ready in {START_DEADLINE_S}s:\n" + log_path.read_text()[-3000:]
                )
            time.sleep(0.2)

    yield start
    for board in started:
        if board.process.poll() is None:
            os.killpg(board.process.pid, signal.SIGTERM)
            try:
                board.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(board.process.pid, signal.SIGKILL)
                board.process.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium through Playwright (never a downloaded browser)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: run .ci/setup.d/20-chromium.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh page that records console errors and page errors in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors
    yield pg
    context.close()


def now_utc() -> datetime:
    return datetime.now(tz=UTC)
