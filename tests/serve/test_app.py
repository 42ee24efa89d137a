"""The dashboard app without a browser (Flask's test client) on a copy of the tiny lake: the
warm start draws every page's first view before serving, a table committed to afterwards is
read again, and the index asks early for what a page draws with."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import dash
import plotly
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from cardlake.serve import app as dashboard
from tests.serve.conftest import kpi_row


def route(client: Any, path: str, search: str = "") -> Any:
    """The page the callback answers for ``path`` (the browser's first request), as JSON."""
    body = {
        "output": "page.children",
        "outputs": {"id": "page", "property": "children"},
        "inputs": [
            {"id": "url", "property": "pathname", "value": path},
            {"id": "url", "property": "search", "value": search},
        ],
        "changedPropIds": ["url.pathname"],
        "state": [],
    }
    resp = client.post("/_dash-update-component", json=body)
    assert resp.status_code == 200
    return resp.get_json()["response"]["page"]["children"]


def text_of(tree: Any, component_id: str) -> Any:
    """The children of the component with ``component_id`` in a page's JSON, else None."""
    if isinstance(tree, dict):
        props = tree.get("props", {})
        if props.get("id") == component_id:
            return props.get("children")
        return text_of(list(props.values()), component_id)
    if isinstance(tree, list):
        return next((t for t in (text_of(v, component_id) for v in tree) if t is not None), None)
    return None


@pytest.fixture
def lake_copy(tiny_lake: Path, tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    shutil.copytree(tiny_lake, root)
    return root


@pytest.fixture
def portfolio_draws(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The month asked for ("" for the latest) each time the portfolio page is drawn."""
    drawn: list[str] = []
    portfolio = dashboard.portfolio_page

    def counted(lake: Any, query: dict[str, str]) -> list[Any]:
        drawn.append(query.get("month", ""))
        return portfolio(lake, query)

    monkeypatch.setattr(dashboard, "portfolio_page", counted)
    return drawn


def test_warm_start_draws_first_views_and_rereads_a_changed_table(
    lake_copy: Path, portfolio_draws: list[str]
) -> None:
    drawn = portfolio_draws
    client = dashboard.create_app(str(lake_copy), warm=True).server.test_client()
    assert drawn == [""]  # drawn once, at start-up
    first = route(client, "/")
    assert drawn == [""]  # the first visitor gets the page drawn at start-up
    assert "gold.kpi_monthly v0 " in text_of(first, "versions")
    assert text_of(first, "kpi-tx_count") == "1,120"  # 2025-01: 1000 + 10 x 12
    write_deltalake(
        str(lake_copy / "gold" / "kpi_monthly"),
        pa.Table.from_pylist([kpi_row(13, "2025-02")]),
        mode="append",
    )
    second = route(client, "/")
    assert drawn == ["", ""]  # drawn afresh from the new commit
    assert "gold.kpi_monthly v1 " in text_of(second, "versions")
    assert text_of(second, "kpi-tx_count") == "1,130"  # 2025-02: 1000 + 10 x 13


def test_without_warm_nothing_is_drawn_before_the_first_visit(
    lake_copy: Path, portfolio_draws: list[str]
) -> None:
    drawn = portfolio_draws
    client = dashboard.create_app(str(lake_copy)).server.test_client()
    assert drawn == []
    route(client, "/")
    assert drawn == [""]


def test_index_asks_early_for_plotly_and_the_world_outline(lake_copy: Path) -> None:
    client = dashboard.create_app(str(lake_copy)).server.test_client()
    preload = f'<link rel="preload" as="script" href="/{dashboard.PLOTLY_JS}">'
    world = f'<script src="/{dashboard.WORLD_JS}"></script>'
    portfolio = client.get("/").get_data(as_text=True)
    assert preload in portfolio and world in portfolio
    customer = client.get("/customer?key=CK-A").get_data(as_text=True)
    assert preload in customer and world not in customer
    for no_chart in ("/risk", "/live", "/customer"):  # no chart on these first views
        text = client.get(no_chart).get_data(as_text=True)
        assert preload not in text and world not in text
    script = client.get("/" + dashboard.WORLD_JS)
    assert script.mimetype == "text/javascript"
    head, assigned = script.get_data(as_text=True).split(
        'window.PlotlyGeoAssets.topojson["world_110m"] = '
    )
    assert head == "window.PlotlyGeoAssets = window.PlotlyGeoAssets || {topojson: {}};\n"
    shipped = Path(dashboard.ASSETS, "topojson", "world_110m.json").read_text()
    assert json.loads(assigned.rstrip().removesuffix(";")) == json.loads(shipped)


def test_a_page_failing_at_start_up_leaves_the_others_served(
    lake_copy: Path, portfolio_draws: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(lake: Any, query: dict[str, str]) -> list[Any]:
        raise RuntimeError("a bug in the segments page")

    monkeypatch.setattr(dashboard, "segments_page", broken)
    client = dashboard.create_app(str(lake_copy), warm=True).server.test_client()
    assert portfolio_draws == [""]
    assert text_of(route(client, "/"), "kpi-tx_count") == "1,120"


def test_graphs_load_the_custom_plotly_bundle_else_dashs_own(
    lake_copy: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = tmp_path / "plotly-cardlake.min.js"
    bundle.write_text("window.Plotly = {custom: true};\n")
    with caplog.at_level(logging.INFO, logger="cardlake.serve"):
        custom = dashboard.create_app(str(lake_copy), plotly_js=str(bundle)).server.test_client()
        own = dashboard.create_app(str(lake_copy), plotly_js=str(tmp_path / "missing.js"))
    served = custom.get("/" + dashboard.PLOTLY_JS)
    assert served.mimetype == "text/javascript"
    assert served.get_data(as_text=True) == "window.Plotly = {custom: true};\n"
    dash_own = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    fallback = own.server.test_client().get("/" + dashboard.PLOTLY_JS)
    assert fallback.get_data() == dash_own.read_bytes()
    messages = [r.getMessage() for r in caplog.records if "Plotly.js" in r.getMessage()]
    assert messages == [
        f"Plotly.js: the custom bundle {bundle} (0.0 MB)",
        f"Plotly.js: no custom bundle at {tmp_path / 'missing.js'} (`make dashboard-assets` "
        "builds it); charts use Dash's full bundle, slower to a first chart",
    ]


def test_dash_renderer_fetches_plotly_where_the_custom_bundle_is_served() -> None:
    """dcc.Graph loads Plotly.js from this URL (unless window.Plotly exists): a Dash upgrade
    that moves it would leave the custom bundle unused, charts drawn with Dash's own."""
    renderer = Path(dash.__file__).parent / "dash-renderer" / "build" / "dash_renderer.min.js"
    assert '"_dash-component-suites/plotly/package_data/plotly.min.js"' in renderer.read_text()
    assert dashboard.PLOTLY_JS == "_dash-component-suites/plotly/package_data/plotly.min.js"
