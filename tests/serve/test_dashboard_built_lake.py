"""The dashboard in Chromium on the lake the whole pipeline built (``built_lake``): every page
loads without console errors (a screenshot each), and what it shows equals the gold tables read
independently here with delta-rs and PyArrow compute (not the dashboard's DuckDB queries).

``CARDLAKE_SERVE_TEST_LAKE=/path/to/lake`` points the module at a lake built beforehand (for
development: building ``built_lake`` takes minutes)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from tests.serve.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHOTS = ROOT / "reports" / "test-artefacts" / "screenshots"
LOAD_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def pipeline_lake(request: pytest.FixtureRequest) -> Path:
    given = os.environ.get("CARDLAKE_SERVE_TEST_LAKE")
    if given:
        return Path(given)
    return Path(request.getfixturevalue("built_lake").lake_root)


@pytest.fixture(scope="module")
def board(start_dashboard: Any, pipeline_lake: Path) -> Any:
    return start_dashboard(pipeline_lake)


def read(lake: Path, name: str) -> pa.Table:
    layer, table = name.split(".")
    return DeltaTable(str(lake / layer / table)).to_pyarrow_table()


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#page-title", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_load_state("networkidle")


def number(text: str) -> float:
    return float(re.sub(r"[$,%\s]", "", text))


def a_customer(lake: Path) -> dict[str, Any]:
    customers = read(lake, "silver.customers").sort_by("customer_key")
    with_email = customers.filter(pc.invert(pc.is_null(customers["email"])))
    return with_email.slice(0, 1).to_pylist()[0]


PAGES = ["/", "/segments", "/risk", "/customer?q={email}", "/customer?key={key}", "/live",
         "/experiment", "/quality"]


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_without_console_errors(page: Any, board: Any, pipeline_lake: Path,
                                           path: str) -> None:
    who = a_customer(pipeline_lake)
    open_page(page, board.url + path.format(key=who["customer_key"], email=who["email"]))
    name = (re.sub(r"\W+", "-", path.split("?")[0].strip("/")) or "portfolio")
    if "{key}" in path:
        name += "-360"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert page.errors == []
    assert page.locator(".panel-error").count() == 0


def test_portfolio_equals_gold(page: Any, board: Any, pipeline_lake: Path) -> None:
    kpis = read(pipeline_lake, "gold.kpi_monthly")
    month = pc.max(kpis["month"]).as_py()
    row = kpis.filter(pc.equal(kpis["month"], month)).to_pylist()[0]
    open_page(page, board.url + "/")
    assert number(page.inner_text("#kpi-tx_count")) == row["tx_count"]
    assert number(page.inner_text("#kpi-tx_value_usd")) == pytest.approx(
        row["tx_value_usd"], abs=0.005)
    assert number(page.inner_text("#kpi-revenue_usd")) == pytest.approx(
        row["revenue_usd"], abs=0.005)
    assert number(page.inner_text("#kpi-active_customers")) == row["active_customers"]
    # transactions by channel for the month, grouped here with PyArrow
    tx = read(pipeline_lake, "gold.fact_transactions")
    tx = tx.filter(pc.equal(tx["month"], month))
    expected = {r["channel"]: r["channel_count"]
                for r in tx.group_by("channel").aggregate([("channel", "count")]).to_pylist()}
    channels = page.locator("#channel-table td[data-dash-column='channel']").all_inner_texts()
    counts = page.locator("#channel-table td[data-dash-column='tx_count']").all_inner_texts()
    assert dict(zip(channels, (int(c) for c in counts), strict=True)) == expected


def test_risk_queue_order_matches_scores(page: Any, board: Any, pipeline_lake: Path) -> None:
    risk = read(pipeline_lake, "gold.customer_risk")
    risk = risk.filter(pc.equal(risk["month"], pc.max(risk["month"])))
    rows = [r for r in risk.to_pylist() if r["tier"] in ("High", "Medium")]
    rows.sort(key=lambda r: (r["tier"] != "High", -r["risk_score"], r["customer_key"]))
    open_page(page, board.url + "/risk")
    shown_scores = [int(v) for v in page.locator(
        "#risk-queue td[data-dash-column='risk_score']").all_inner_texts()]
    shown_tiers = page.locator("#risk-queue td[data-dash-column='tier']").all_inner_texts()
    first_page = len(shown_scores)
    assert first_page > 0
    assert shown_scores == [r["risk_score"] for r in rows[:first_page]]
    assert shown_tiers == [r["tier"] for r in rows[:first_page]]


def test_360_search_finds_a_known_customer(page: Any, board: Any, pipeline_lake: Path) -> None:
    who = a_customer(pipeline_lake)
    open_page(page, board.url + "/customer")
    page.fill("#customer-search", who["email"])
    page.press("#customer-search", "Enter")
    page.wait_for_selector("#search-results")
    keys = page.locator("#search-results a").all_inner_texts()
    assert who["customer_key"] in keys
    assert who["email"] not in page.inner_text("#search-results")  # shown masked
    page.locator("#search-results a", has_text=who["customer_key"]).click()
    page.wait_for_selector("#customer-360")
    assert page.inner_text("#customer-title") == f"Customer {who['customer_key']}"
    assert page.errors == []
