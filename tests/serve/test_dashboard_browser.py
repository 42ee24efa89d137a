"""The dashboard in a real browser (Debian's Chromium through Playwright) on the tiny lake:
every page loads without console errors, the numbers shown are the lake's, the risk queue's
order follows the scores, 360 search finds a customer, the live page picks up a new alert."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from tests.serve.conftest import ROOT

pytestmark = pytest.mark.integration

SHOTS = ROOT / "reports" / "test-artefacts" / "screenshots"
PAGES = [
    "/",
    "/segments",
    "/risk",
    "/customer?q=santos",
    "/customer?key=CK-A",
    "/live",
    "/experiment",
    "/quality",
]
LOAD_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def board_lake(tiny_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny lake this module may add tables to (the live alerts)."""
    root = tmp_path_factory.mktemp("board") / "lake"
    shutil.copytree(tiny_lake, root)
    return root


@pytest.fixture(scope="module")
def reports_dir(board_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cardlake.serve.lake import Lake
    from cardlake.serve.profiling import write_profiles

    out = tmp_path_factory.mktemp("reports")
    write_profiles(Lake(str(board_lake)), str(out / "profiling"))
    return out


@pytest.fixture(scope="module")
def board(start_dashboard: Any, board_lake: Path, reports_dir: Path) -> Any:
    return start_dashboard(board_lake, reports_dir=reports_dir)


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#page-title", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_load_state("networkidle")


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def number(text: str) -> float:
    return float(re.sub(r"[$,%\s]", "", text))


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_without_console_errors(page: Any, board: Any, path: str) -> None:
    open_page(page, board.url + path)
    name = "tiny-" + (re.sub(r"\W+", "-", path.strip("/")) or "portfolio")
    shot(page, name)
    assert page.errors == []
    # a page names the table versions it shows, or which table is not built yet
    assert page.locator("#versions, .not-built").count() >= 1


def test_portfolio_numbers_are_the_lakes(page: Any, board: Any, board_lake: Path) -> None:
    kpis = DeltaTable(str(board_lake / "gold" / "kpi_monthly")).to_pyarrow_table()
    latest = max(kpis.column("month").to_pylist())
    row = next(r for r in kpis.to_pylist() if r["month"] == latest)
    open_page(page, board.url + "/")
    assert number(page.inner_text("#kpi-tx_count")) == row["tx_count"]
    assert number(page.inner_text("#kpi-tx_value_usd")) == pytest.approx(row["tx_value_usd"])
    assert number(page.inner_text("#kpi-revenue_usd")) == pytest.approx(row["revenue_usd"])
    assert number(page.inner_text("#kpi-success_rate")) == pytest.approx(
        100 * row["success_rate"], abs=0.005
    )
    assert number(page.inner_text("#kpi-active_customers")) == row["active_customers"]
    assert number(page.inner_text("#kpi-active_cards")) == 252  # 240 + 12 in 2025-01
    # the month picker redraws the cards for another month
    page.click("#month-picker")
    page.get_by_text("2024-06", exact=True).click()
    page.wait_for_function("document.querySelector('#kpi-tx_count').innerText === '1,050'")
    assert page.errors == []


def test_risk_queue_order_follows_scores(page: Any, board: Any, board_lake: Path) -> None:
    risk = DeltaTable(str(board_lake / "gold" / "customer_risk")).to_pyarrow_table().to_pylist()
    tier_rank = {"High": 0, "Medium": 1}
    expected = [
        r["customer_key"]
        for r in sorted(
            (r for r in risk if r["tier"] in tier_rank),
            key=lambda r: (tier_rank[r["tier"]], -r["risk_score"]),
        )
    ]
    open_page(page, board.url + "/risk")
    cells = page.locator("#risk-queue td[data-dash-column='customer_key']").all_inner_texts()
    assert cells == expected
    with page.expect_download() as download:
        page.click("#risk-queue button.export")
    csv = Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()  # a BOM
    assert csv[0].startswith("customer_key,risk_score,tier")
    assert [line.split(",")[0] for line in csv[1:]] == expected


def test_customer_search_finds_a_known_customer(page: Any, board: Any) -> None:
    open_page(page, board.url + "/customer")
    page.fill("#customer-search", "Santos")
    page.press("#customer-search", "Enter")
    page.wait_for_selector("#search-results")
    assert page.locator("#search-results li").all_inner_texts() == [
        "CK-A A. S. · a•••@example.com · IE"
    ]
    page.click("#search-results a")
    page.wait_for_selector("#customer-360")
    assert page.inner_text("#customer-title") == "Customer CK-A"
    assert "High (710)" in page.inner_text("#customer-risk")
    body = page.inner_text("#customer-360")
    assert "Santos" not in body and "aoife.santos" not in body  # analysts see masks
    assert page.errors == []


SEND_DELAY_S = 0.5  # the producer sends each event half a second after its event time


def _alert(event_id: str, event_time: datetime, alert_after_s: float) -> dict[str, Any]:
    """A row of gold.fraud_alerts_live as the stream writes it (lib/cardlake/stream/job.py)."""
    sent = event_time + timedelta(seconds=SEND_DELAY_S)
    return {
        "event_id": event_id,
        "card_token": "tok_" + event_id,
        "customer_key": "CK-A",
        "transaction_id": "T" + event_id,
        "score": 0.97,
        "threshold": 0.8,
        "reason_codes": ["new country", "high amount"],
        "model_version": "3",
        "event_time": event_time,
        "broker_time": sent + timedelta(seconds=0.1),
        "sent_time": sent,
        "alert_time": event_time + timedelta(seconds=alert_after_s),
        "batch_id": 1,
        "month": event_time.strftime("%Y-%m"),
    }


TS = pa.timestamp("us", tz="UTC")
ALERT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("card_token", pa.string()),
        ("customer_key", pa.string()),
        ("transaction_id", pa.string()),
        ("score", pa.float64()),
        ("threshold", pa.float64()),
        ("reason_codes", pa.list_(pa.string())),
        ("model_version", pa.string()),
        ("event_time", TS),
        ("broker_time", TS),
        ("sent_time", TS),
        ("alert_time", TS),
        ("batch_id", pa.int64()),
        ("month", pa.string()),
    ]
)


def test_live_page_shows_a_new_alert(page: Any, board: Any, board_lake: Path) -> None:
    table = str(board_lake / "gold" / "fraud_alerts_live")
    shutil.rmtree(table, ignore_errors=True)
    open_page(page, board.url + "/live")
    assert "gold.fraud_alerts_live: not built yet" in page.inner_text("#live-content")
    now = datetime.now(tz=UTC).replace(microsecond=0)
    write_deltalake(table, pa.Table.from_pylist([_alert("E1", now, 1.5)], schema=ALERT_SCHEMA))
    page.wait_for_selector("#live-alerts td[data-dash-column='event_id']", timeout=10_000)
    write_deltalake(
        table,
        pa.Table.from_pylist([_alert("E2", now + timedelta(seconds=5), 2.25)], schema=ALERT_SCHEMA),
        mode="append",
    )
    page.wait_for_function(
        "document.querySelector(\"#live-alerts td[data-dash-column='event_id']\")"
        ".innerText === 'E2'",
        timeout=10_000,
    )
    ids = page.locator("#live-alerts td[data-dash-column='event_id']").all_inner_texts()
    latencies = page.locator("#live-alerts td[data-dash-column='latency_s']").all_inner_texts()
    assert ids == ["E2", "E1"]  # newest first, without reloading the page
    assert [float(v) for v in latencies] == [2.25 - SEND_DELAY_S, 1.5 - SEND_DELAY_S]  # sent->alert
    reasons = page.locator("#live-alerts td[data-dash-column='reasons']").all_inner_texts()
    assert reasons == ["new country; high amount"] * 2
    tokens = page.locator("#live-alerts td[data-dash-column='card_token']").all_inner_texts()
    assert tokens == ["•••", "•••"]  # card tokens are classified `card`: analysts see a mask
    shot(page, "tiny-live-with-alerts")
    assert page.errors == []


def test_quality_page_links_the_profiling_reports(page: Any, board: Any) -> None:
    open_page(page, board.url + "/quality")
    assert page.locator("#profile-links a").all_inner_texts() == ["crm_customers"]
    href = page.get_attribute("#profile-links a", "href")
    profile = page.request.get(board.url + str(href))
    assert profile.status == 200
    text = profile.text()
    assert "Profile of bronze.crm_customers" in text
    assert "Aoife" not in text  # no value of a name column is copied into the profile
