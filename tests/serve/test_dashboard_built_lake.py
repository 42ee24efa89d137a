"""The dashboard in Chromium on the lake the whole pipeline built (``built_lake``): every page
loads without console errors (a screenshot each), and what it shows equals the gold tables read
independently here with delta-rs and PyArrow compute (not the dashboard's DuckDB queries): the
portfolio's KPIs, channels and countries (map and table), the segments' sizes, the risk queue's
order, the experiment's group sizes and the quarantine counts by source; and the pages draw no
trace type the custom Plotly.js bundle leaves out.

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

from cardlake.serve import app as dashboard
from tests.serve.conftest import ROOT
from tests.serve.test_app import route

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


PAGES = [
    "/",
    "/segments",
    "/risk",
    "/customer?q={email}",
    "/customer?key={key}",
    "/live",
    "/experiment",
    "/quality",
]


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_without_console_errors(
    page: Any, board: Any, pipeline_lake: Path, path: str
) -> None:
    who = a_customer(pipeline_lake)
    open_page(page, board.url + path.format(key=who["customer_key"], email=who["email"]))
    name = re.sub(r"\W+", "-", path.split("?")[0].strip("/")) or "portfolio"
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
        row["tx_value_usd"], abs=0.005
    )
    assert number(page.inner_text("#kpi-revenue_usd")) == pytest.approx(
        row["revenue_usd"], abs=0.005
    )
    assert number(page.inner_text("#kpi-active_customers")) == row["active_customers"]
    # transactions by channel for the month, grouped here with PyArrow
    tx = read(pipeline_lake, "gold.fact_transactions")
    tx = tx.filter(pc.equal(tx["month"], month))
    expected = {
        r["channel"]: r["channel_count"]
        for r in tx.group_by("channel").aggregate([("channel", "count")]).to_pylist()
    }
    channels = page.locator("#channel-table td[data-dash-column='channel']").all_inner_texts()
    counts = page.locator("#channel-table td[data-dash-column='tx_count']").all_inner_texts()
    assert dict(zip(channels, (int(c) for c in counts), strict=True)) == expected


def test_risk_queue_order_matches_scores(page: Any, board: Any, pipeline_lake: Path) -> None:
    risk = read(pipeline_lake, "gold.customer_risk")
    risk = risk.filter(pc.equal(risk["month"], pc.max(risk["month"])))
    rows = [r for r in risk.to_pylist() if r["tier"] in ("High", "Medium")]
    rows.sort(key=lambda r: (r["tier"] != "High", -r["risk_score"], r["customer_key"]))
    open_page(page, board.url + "/risk")
    shown_scores = [
        int(v)
        for v in page.locator("#risk-queue td[data-dash-column='risk_score']").all_inner_texts()
    ]
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


# the traces of a drawn dcc.Graph as Plotly drew them (``_fullData``: the figure's binary-encoded
# arrays decoded), typed arrays as lists
TRACES = """(id) => {
  const el = document.getElementById(id);
  const gd = el && (el.classList.contains('js-plotly-plot') ? el
                                                           : el.querySelector('.js-plotly-plot'));
  if (!gd || !gd._fullData) return null;
  const list = v => (v == null ? null : Array.from(v));
  return gd._fullData.map(t => ({name: t.name, x: list(t.x), y: list(t.y), z: list(t.z),
                            hovertext: list(t.hovertext)}));
}"""


def traces(page: Any, graph_id: str) -> list[dict[str, Any]]:
    page.wait_for_function(f"({TRACES})({graph_id!r}) !== null", timeout=LOAD_TIMEOUT_MS)
    return list(page.evaluate(TRACES, graph_id))


def column(page: Any, table_id: str, name: str) -> list[str]:
    return list(page.locator(f"#{table_id} td[data-dash-column='{name}']").all_inner_texts())


def counts(table: pa.Table, keys: list[str]) -> dict[tuple[Any, ...], int]:
    """Rows per value of ``keys``, counted here with PyArrow."""
    grouped = table.group_by(keys).aggregate([([], "count_all")]).to_pylist()
    return {tuple(r[k] for k in keys): r["count_all"] for r in grouped}


def test_segment_sizes_equal_gold(page: Any, board: Any, pipeline_lake: Path) -> None:
    segments = read(pipeline_lake, "gold.customer_segments")
    expected = counts(segments, ["segment", "month"])
    month = pc.max(segments["month"]).as_py()
    open_page(page, board.url + "/segments")
    assert page.inner_text("#page-Segments .picker") == f"Month: {month}"
    shown = {
        (t["name"], x): y
        for t in traces(page, "segment-sizes")
        for x, y in zip(t["x"], t["y"], strict=True)
    }
    assert shown == expected
    # the profiles of the month shown: one row per segment, its size
    sizes = column(page, "segment-profiles", "customers")
    assert dict(zip(column(page, "segment-profiles", "segment"), map(int, sizes), strict=True)) == {
        s: n for (s, m), n in expected.items() if m == month
    }


def test_portfolio_countries_equal_gold(page: Any, board: Any, pipeline_lake: Path) -> None:
    month = pc.max(read(pipeline_lake, "gold.kpi_monthly")["month"]).as_py()
    countries = read(pipeline_lake, "gold.kpi_country_monthly")
    rows = countries.filter(pc.equal(countries["month"], month)).to_pylist()
    open_page(page, board.url + "/")
    (world,) = traces(page, "country-map")
    assert dict(zip(world["hovertext"], world["z"], strict=True)) == {
        r["country"]: r["active_customers"] for r in rows
    }
    # the table's first page: most customers first, then by country
    rows.sort(key=lambda r: (-r["customers"], r["country"]))
    shown = column(page, "country-table", "country")
    assert shown == [r["country"] for r in rows[: len(shown)]] and len(shown) == min(10, len(rows))
    assert [int(v) for v in column(page, "country-table", "tx_count")] == [
        r["tx_count"] for r in rows[: len(shown)]
    ]
    assert [float(v) for v in column(page, "country-table", "spend_usd")] == pytest.approx(
        [r["spend_usd"] for r in rows[: len(shown)]], abs=0.005
    )


def test_experiment_sizes_equal_gold(page: Any, board: Any, pipeline_lake: Path) -> None:
    expected = counts(
        read(pipeline_lake, "gold.experiment_assignment"), ["experiment", "month", "group"]
    )
    open_page(page, board.url + "/experiment")
    shown = zip(
        column(page, "experiment-sizes", "experiment"),
        column(page, "experiment-sizes", "month"),
        column(page, "experiment-sizes", "group"),
        column(page, "experiment-sizes", "customers"),
        strict=True,
    )
    assert {(e, m, g): int(n) for e, m, g, n in shown} == expected
    assert {g for _, _, g in expected} == {"test", "control"}


def test_quarantine_counts_by_source_equal_the_tables(
    page: Any, board: Any, pipeline_lake: Path
) -> None:
    expected = {}
    for folder in sorted((pipeline_lake / "_quarantine").iterdir()):
        rows = read(pipeline_lake, f"_quarantine.{folder.name}")
        expected |= {(folder.name, m): n for (m,), n in counts(rows, ["ingest_month"]).items()}
    open_page(page, board.url + "/quality")
    shown = {
        (t["name"], x): y
        for t in traces(page, "quarantine-by-source")
        for x, y in zip(t["x"], t["y"], strict=True)
    }
    assert shown == expected
    assert sum(expected.values()) > 0


def trace_types(tree: Any) -> set[str]:
    """The trace types of every figure in a page's JSON (Plotly's default type is scatter)."""
    if isinstance(tree, dict):
        figure = tree.get("props", {}).get("figure")
        found = {t.get("type", "scatter") for t in figure["data"]} if figure else set()
        return found.union(*(trace_types(v) for v in tree.get("props", {}).values()))
    if isinstance(tree, list):
        return set().union(*(trace_types(v) for v in tree))
    return set()


def test_pages_draw_only_trace_types_the_plotly_bundle_registers(pipeline_lake: Path) -> None:
    """The custom Plotly.js (infra/plotly/index.js) would leave a chart of any other type blank."""
    entry = (ROOT / "infra" / "plotly" / "index.js").read_text()
    registered = {"scatter", *re.findall(r"require\('plotly\.js/lib/(\w+)'\)", entry)} - {"core"}
    client = dashboard.create_app(str(pipeline_lake)).server.test_client()
    key = a_customer(pipeline_lake)["customer_key"]
    drawn: set[str] = set()
    for path, search in [*((p, "") for p, _ in dashboard.PAGES), ("/customer", f"?key={key}")]:
        drawn |= trace_types(route(client, path, search))
    assert drawn == {"bar", "scatter", "heatmap", "choropleth"}  # every chart, all pages built
    assert drawn <= registered
