"""The Cardlake dashboard: a Dash app over the lake's latest Delta snapshots (read-only).

Dash (Plotly's framework) because its pages are plain Python over pandas, its figures are
Plotly's (world maps, box plots) served with the app (no CDN), its DataTable sorts, filters and
exports CSV in the browser, and the app is a Flask server a test or a WSGI host starts like any
other. Every page is rendered on request from :mod:`cardlake.serve.data` and names the table
versions it shows; a page whose table is not built yet says which ``make`` target builds it.

    python jobs/dashboard.py --lake-root lake --port 8050 --role analyst
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import dash
import flask
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from dash import Input, Output, State, dash_table, dcc, html
from flask import abort, send_from_directory

from cardlake.serve import data
from cardlake.serve.analytics import iso3
from cardlake.serve.lake import Lake, TableNotBuilt
from cardlake.serve.masking import (
    DEFAULT_ROLE,
    check_role,
    governance_rules,
    mask_frame,
    mask_value,
)

log = logging.getLogger("cardlake.serve")

ASSETS = os.path.join(os.path.dirname(__file__), "assets")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8050
LIVE_REFRESH_MS = 2000
PAGE_CACHE_SIZE = 64
PAGES = (
    ("/", "Portfolio"),
    ("/segments", "Segments"),
    ("/risk", "Risk queue"),
    ("/customer", "Customer 360"),
    ("/live", "Live fraud alerts"),
    ("/experiment", "Engagement experiment"),
    ("/quality", "Data quality"),
)
GRAPH_CONFIG: Any = {"displaylogo": False, "topojsonURL": "/assets/topojson/"}
# where dcc.Graph loads Plotly.js from when served locally (it asks only once a page's content
# has arrived); the pages whose first view draws charts have their index fetch it at once
PLOTLY_JS = "_dash-component-suites/plotly/package_data/plotly.min.js"
# Plotly.js with only the trace types these pages draw (infra/plotly, `make dashboard-assets`):
# 1.4 MB instead of Dash's 4.8 MB, so less to load and compile before the first chart. Served at
# PLOTLY_JS itself, so dcc.Graph's own loader and the preload above fetch it, whatever the page
PLOTLY_CACHE_ENV = "CARDLAKE_PLOTLY_CACHE"
PLOTLY_BUNDLE = "plotly-cardlake.min.js"
CHART_PAGES = ("/", "/segments", "/experiment", "/quality")
# the portfolio's world outline, handed to Plotly with the page: Plotly otherwise fetches it
# only after drawing the map's frame, one more round trip at the end of the first render
WORLD_TOPOJSON = ("world_110m", os.path.join(ASSETS, "topojson", "world_110m.json"))
WORLD_JS = "_cardlake/world.js"


# --- formatting ----------------------------------------------------------------------------


def fmt_count(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"{int(value):,}"


def fmt_usd(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"${float(value):,.2f}"


def fmt_rate(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"{100 * float(value):.2f}%"


# --- building blocks -----------------------------------------------------------------------


def not_built(name: str) -> html.Div:
    return html.Div(
        [html.Strong(f"{name}: not built yet. "), f"Run `{data.built_by(name)}` to build it."],
        className="not-built",
    )


def panel(title: str, build: Callable[[], Any]) -> html.Div:
    """A titled panel; a missing table becomes a "not built yet" note, not a failed page."""
    try:
        body = build()
    except TableNotBuilt as missing:
        body = not_built(missing.name)
    except Exception as exc:  # one broken panel must not blank the page; details in the log
        log.exception("panel %r failed", title)
        body = html.Div(
            f"This panel could not be drawn ({type(exc).__name__}); "
            "the dashboard's log has the details.",
            className="panel-error",
        )
    return html.Div([html.H3(title), body], className="panel")


def table(df: pd.DataFrame, table_id: str, **kwargs: Any) -> Any:
    records = df.astype(object).where(df.notna(), None).to_dict("records")
    for row in records:
        for key, value in row.items():
            if not isinstance(value, str | int | float | bool | type(None)):
                row[key] = str(value)
            elif isinstance(value, float) and math.isfinite(value):
                row[key] = round(value, 2 if key.endswith("_usd") else 4)
    return dash_table.DataTable(  # type: ignore[attr-defined]
        id=table_id,
        columns=[{"name": c, "id": c} for c in df.columns],
        data=records,
        style_table={"overflowX": "auto"},
        style_cell={
            "fontFamily": "inherit",
            "fontSize": "13px",
            "textAlign": "left",
            "maxWidth": "420px",
            "whiteSpace": "normal",
        },
        style_header={"fontWeight": "bold"},
        **kwargs,
    )


def graph(fig: go.Figure, graph_id: str, height: int = 320) -> dcc.Graph:
    fig.update_layout(
        height=height, margin={"l": 40, "r": 10, "t": 40, "b": 40}, template="plotly_white"
    )
    return dcc.Graph(id=graph_id, figure=fig, config=GRAPH_CONFIG)


def kpi_card(card_id: str, label: str, value: str, delta: str = "") -> html.Div:
    return html.Div(
        [
            html.Div(label, className="kpi-label"),
            html.Div(value, id=card_id, className="kpi"),
            html.Div(delta, className="kpi-delta"),
        ],
        className="kpi-card",
    )


def versions_footer(lake: Lake, *names: str) -> html.Div:
    return html.Div("Showing " + lake.version_label(*names), id="versions", className="versions")


# --- pages ---------------------------------------------------------------------------------


def _delta(cur: float, prev: float | None) -> str:
    if prev is None or pd.isna(prev) or prev == 0:
        return ""
    return f"{100 * (cur - prev) / abs(prev):+.1f}% vs previous month"


def portfolio_cards(lake: Lake, month: str) -> list[Any]:
    kpis = data.kpi_monthly(lake).set_index("month")
    if month not in kpis.index:
        return [html.Div(f"no KPIs for {month}")]
    cur = kpis.loc[month]
    earlier = [m for m in kpis.index if m < month]
    prev = kpis.loc[earlier[-1]] if earlier else None

    def card(key: str, label: str, fmt: Callable[[Any], str]) -> html.Div:
        before = None if prev is None else prev[key]
        return kpi_card(f"kpi-{key}", label, fmt(cur[key]), _delta(cur[key], before))

    cards = (
        ("tx_count", "Transactions", fmt_count),
        ("tx_value_usd", "Transaction value", fmt_usd),
        ("revenue_usd", "Revenue (fees + FX)", fmt_usd),
        ("success_rate", "Success rate", fmt_rate),
        ("active_customers", "Active customers", fmt_count),
        ("active_cards", "Active cards", fmt_count),
        ("notifications_sent", "Notifications sent", fmt_count),
        ("notifications_failed", "Notifications failed", fmt_count),
    )
    # a lake built before a KPI existed shows the others until `make gold` rebuilds it
    return [card(key, label, fmt) for key, label, fmt in cards if key in kpis.columns]


def portfolio_month_panels(lake: Lake, month: str) -> list[Any]:
    def channels() -> Any:
        df = data.by_channel(lake, month)
        fig = px.bar(
            df,
            x="channel",
            y="tx_count",
            hover_data=["value_usd", "revenue_usd", "success_rate"],
            title=f"Transactions by channel, {month}",
        )
        return html.Div(
            [graph(fig, "channel-chart"), table(df, "channel-table", sort_action="native")]
        )

    def countries() -> Any:
        df = data.by_country(lake, month)
        df["iso3"] = [iso3(str(c)) for c in df["country"]]
        fig = px.choropleth(
            df.dropna(subset=["iso3"]),
            locations="iso3",
            color="active_customers",
            hover_name="country",
            hover_data=["customers", "tx_count", "spend_usd"],
            color_continuous_scale="Blues",
            title=f"Active customers by country, {month}",
        )
        fig.update_geos(
            showframe=False,
            projection_type="natural earth",
            fitbounds="locations",
            showcountries=True,
        )
        return html.Div(
            [
                graph(fig, "country-map", 380),
                table(
                    df.drop(columns=["iso3", "month"]),
                    "country-table",
                    sort_action="native",
                    page_size=10,
                ),
            ]
        )

    return [panel("By channel", channels), panel("By country", countries)]


def portfolio_page(lake: Lake, query: dict[str, str]) -> list[Any]:
    all_months = data.months(lake)
    if not all_months:
        return [html.Div("gold.kpi_monthly is empty")]
    month = query.get("month") or ""
    if month not in all_months:
        month = all_months[-1]

    def trend() -> Any:
        kpis = data.kpi_monthly(lake)
        fig = go.Figure()
        fig.add_bar(x=kpis["month"], y=kpis["tx_value_usd"], name="value (USD)")
        fig.add_scatter(
            x=kpis["month"],
            y=kpis["revenue_usd"],
            name="revenue (USD)",
            yaxis="y2",
            mode="lines+markers",
        )
        fig.update_layout(
            title="Transaction value and revenue by month",
            yaxis2={"overlaying": "y", "side": "right"},
            legend={"orientation": "h", "y": -0.2},
        )
        notes = go.Figure()
        notes.add_bar(x=kpis["month"], y=kpis["notifications_sent"], name="sent")
        notes.add_bar(x=kpis["month"], y=kpis["notifications_failed"], name="failed")
        notes.update_layout(title="Notifications by month", barmode="group")
        return html.Div(
            [graph(fig, "trend-chart"), graph(notes, "notifications-chart", 260)], className="grid2"
        )

    def mix() -> Any:
        df = data.plan_mix(lake)
        fig = px.area(df, x="month", y="share", color="plan_type", title="Plan mix by month")
        return graph(fig, "plan-mix-chart", 280)

    return [
        html.Div(
            [
                html.Label("Month "),
                dcc.Dropdown(
                    id="month-picker",
                    options=all_months,
                    value=month,
                    clearable=False,
                    style={"width": "160px", "display": "inline-block"},
                ),
            ],
            className="picker",
        ),
        html.Div(portfolio_cards(lake, month), id="kpi-cards", className="kpi-row"),
        html.Div(portfolio_month_panels(lake, month), id="month-panels"),
        panel("Trends", trend),
        panel("Plan mix", mix),
        versions_footer(
            lake,
            "gold.kpi_monthly",
            "gold.fact_transactions",
            "gold.kpi_country_monthly",
            "gold.kpi_plan_monthly",
        ),
    ]


def segments_page(lake: Lake, query: dict[str, str]) -> list[Any]:
    seg_months = data.segment_months(lake)
    month = query.get("month") or ""
    if month not in seg_months:
        month = seg_months[-1] if seg_months else ""

    def sizes() -> Any:
        df = data.segment_sizes(lake)
        return graph(
            px.bar(
                df,
                x="month",
                y="customers",
                color="segment",
                title="Customers per segment by month",
            ),
            "segment-sizes",
        )

    def profiles() -> Any:
        df = data.segment_profiles(lake, month)
        shown = df[["segment", "customers", "profile", *[c for c, _ in data.PROFILE_FEATURES]]]
        return table(shown, "segment-profiles", sort_action="native")

    def migration() -> Any:
        df = data.segment_migration(lake, month)
        if df.empty:
            return html.Div("no earlier month to compare with")
        pivot = df.pivot_table(
            index="from_segment", columns="to_segment", values="customers", fill_value=0
        )
        fig = px.imshow(
            pivot,
            text_auto=True,
            color_continuous_scale="Blues",
            labels={"x": f"segment in {month}", "y": "segment the month before"},
            title="How customers moved between segments",
        )
        return graph(fig, "segment-migration", 380)

    return [
        html.Div(f"Month: {month}", className="picker"),
        panel("Segment sizes", sizes),
        panel(f"Segment profiles, {month}", profiles),
        panel("Migration", migration),
        versions_footer(lake, "gold.customer_segments", "gold.customer_monthly_features"),
    ]


def risk_page(lake: Lake, query: dict[str, str]) -> list[Any]:
    def queue() -> Any:
        df = data.risk_queue(lake)
        counts = df["tier"].value_counts()
        summary = html.Div(
            f"{int(counts.get('High', 0)):,} High and {int(counts.get('Medium', 0)):,} Medium "
            f"customers in {df['month'].iloc[0] if len(df) else '-'}",
            id="risk-summary",
        )
        return html.Div(
            [
                summary,
                table(
                    df.drop(columns=["month"]),
                    "risk-queue",
                    sort_action="native",
                    filter_action="native",
                    export_format="csv",
                    export_headers="display",
                    page_size=25,
                ),
            ]
        )

    return [
        panel("Risk queue: High, then Medium, highest score first", queue),
        versions_footer(lake, "gold.customer_risk"),
    ]


def customer_page(lake: Lake, query: dict[str, str], role: str) -> list[Any]:
    search = html.Div(
        [
            dcc.Input(
                id="customer-search",
                type="text",
                value=query.get("q", ""),
                placeholder="customer key, name or email",
                debounce=True,
                style={"width": "320px"},
            ),
            html.Button("Search", id="customer-search-button"),
            html.Span(f"  viewing as {role}", className="role"),
        ],
        className="picker",
    )
    body: list[Any] = [search]
    if query.get("q"):
        body.append(panel("Matches", lambda: search_results(lake, query["q"], role)))
    if query.get("key"):
        body.append(customer_detail(lake, query["key"], role))
    body.append(versions_footer(lake, "silver.customers", "gold.customer_monthly_features"))
    return body


def search_results(lake: Lake, text: str, role: str) -> Any:
    df = data.search_customers(lake, text)
    if df.empty:
        return html.Div("no customer matches", id="search-empty")
    items = [
        html.Li(
            [
                html.A(row["customer_key"], href=f"/customer?key={row['customer_key']}"),
                " ",
                mask_value("first_name", row["first_name"], role),
                " ",
                mask_value("last_name", row["last_name"], role),
                " · ",
                mask_value("email", row["email"], role),
                " · ",
                str(row["country"]),
            ]
        )
        for _, row in df.iterrows()
    ]
    return html.Ul(items, id="search-results")


def customer_detail(lake: Lake, key: str, role: str) -> html.Div:
    try:
        c = data.customer_360(lake, key, role)
    except TableNotBuilt as missing:
        return not_built(missing.name)
    if c is None:
        return html.Div(f"no current customer with key {key}", id="customer-missing")
    record = pd.DataFrame(c.record, columns=["attribute", "value", "source"])
    sparks = []
    for feature in data.FEATURE_SPARKS:
        if not c.features.empty and feature in c.features:
            fig = px.line(c.features, x="month", y=feature, title=feature, markers=True)
            sparks.append(graph(fig, f"spark-{feature}", 180))
    risk = c.risk or {}
    facts = html.Ul(
        [
            html.Li(["Segment: ", html.Strong(c.segment or "-", id="customer-segment")]),
            html.Li(
                [
                    "Engagement score: ",
                    html.Strong(
                        "-" if c.engagement is None else f"{c.engagement:.3f}",
                        id="customer-engagement",
                    ),
                ]
            ),
            html.Li(
                [
                    "Risk: ",
                    html.Strong(
                        f"{risk.get('tier', '-')} ({risk.get('risk_score', '-')})",
                        id="customer-risk",
                    ),
                    f" — {risk.get('reasons') or 'no adverse reasons'}" if risk else "",
                ]
            ),
        ]
    )
    parts: list[Any] = [
        html.H2(f"Customer {c.customer_key}", id="customer-title"),
        html.Div(
            [
                html.Div([html.H3("Golden record"), table(record, "golden-record")]),
                html.Div([html.H3("Summary"), facts]),
            ],
            className="grid2",
        ),
        html.H3("Monthly features"),
        html.Div(sparks, className="grid4"),
        html.H3("Fraud alerts"),
        table(c.alerts, "customer-alerts") if not c.alerts.empty else html.Div("none"),
        html.H3("Service interactions"),
        table(c.interactions, "customer-interactions", page_size=10)
        if not c.interactions.empty
        else html.Div("none"),
    ]
    if c.missing:
        parts.append(html.Div([not_built(name) for name in c.missing]))
    return html.Div(parts, id="customer-360", className="panel")


def live_page(lake: Lake, query: dict[str, str], refresh_ms: int, role: str) -> list[Any]:
    return [
        html.Div(live_content(lake, role), id="live-content"),
        dcc.Interval(id="live-tick", interval=refresh_ms),
    ]


def live_content(lake: Lake, role: str) -> list[Any]:
    try:
        df = mask_frame(data.live_alerts(lake), role, table="gold.fraud_alerts_live")
    except TableNotBuilt as missing:
        return [not_built(missing.name)]
    latency = df["latency_s"].dropna()
    stats = (
        f"{len(df)} newest alerts; latency p50 {latency.quantile(0.5):.2f} s, "
        f"p95 {latency.quantile(0.95):.2f} s"
        if len(latency)
        else f"{len(df)} alerts"
    )
    return [
        html.Div(stats, id="live-stats"),
        table(df, "live-alerts", page_size=50),
        versions_footer(lake, "gold.fraud_alerts_live"),
    ]


def experiment_page(lake: Lake, query: dict[str, str]) -> list[Any]:
    def sizes() -> Any:
        return table(data.experiment_sizes(lake), "experiment-sizes")

    def balance() -> Any:
        df = data.experiment_balance(lake)
        note = html.Div("|SMD| below 0.1 is the usual bar for balanced groups.")
        return html.Div([table(df, "experiment-balance"), note])

    def outcomes() -> Any:
        df = data.experiment_outcomes(lake)
        if df.empty:
            return html.Div("no outcomes yet: the month after assignment is not in the lake")
        fig = px.bar(
            df,
            x="month",
            y="active_next_month",
            color="group",
            barmode="group",
            title="Share active the month after assignment",
        )
        return html.Div(
            [graph(fig, "experiment-outcomes-chart", 280), table(df, "experiment-outcomes")]
        )

    return [
        panel("Test and control sizes", sizes),
        panel("Balance", balance),
        panel("Outcomes", outcomes),
        versions_footer(lake, "gold.experiment_assignment"),
    ]


def quality_page(lake: Lake, query: dict[str, str], profiles_dir: str | None) -> list[Any]:
    def quarantine() -> Any:
        df = data.quarantine_counts(lake)
        if df.empty:
            return html.Div("nothing quarantined")
        by_source = px.bar(
            df.groupby(["month", "source"], as_index=False)["row_count"].sum(),
            x="month",
            y="row_count",
            color="source",
            title="Quarantined rows by source and ingest month",
        )
        by_reason = px.bar(
            df.groupby(["month", "reason"], as_index=False)["row_count"].sum(),
            x="month",
            y="row_count",
            color="reason",
            title="Quarantined rows by reason and ingest month",
        )
        totals = df.groupby(["source", "reason"], as_index=False)["row_count"].sum()
        return html.Div(
            [
                html.Div(
                    [
                        graph(by_source, "quarantine-by-source", 300),
                        graph(by_reason, "quarantine-by-reason", 300),
                    ],
                    className="grid2",
                ),
                table(totals, "quarantine-totals", sort_action="native", page_size=12),
            ]
        )

    def expectations() -> Any:
        df = data.expectation_results(lake)
        failed = int((~df["success"].astype(bool)).sum())
        return html.Div(
            [
                html.Div(f"{len(df)} expectations, {failed} failing", id="dq-summary"),
                table(df, "dq-results", sort_action="native", filter_action="native", page_size=15),
            ]
        )

    def er() -> Any:
        return table(data.er_metrics(lake), "er-metrics")

    def fresh() -> Any:
        return table(data.freshness(lake), "freshness", sort_action="native", page_size=15)

    def links() -> Any:
        items = []
        if profiles_dir and os.path.isdir(profiles_dir):
            items = [
                html.Li(html.A(f.removesuffix(".html"), href=f"/profiles/{f}", target="_blank"))
                for f in sorted(os.listdir(profiles_dir))
                if f.endswith(".html")
            ]
        if not items:
            return html.Div("No profiling reports yet: run `make report MONTH=YYYY-MM`.")
        return html.Ul(items, id="profile-links")

    return [
        panel("Quarantine", quarantine),
        panel("Expectation results", expectations),
        panel("Entity resolution quality", er),
        panel("Table freshness", fresh),
        panel("Profiling reports", links),
        versions_footer(lake, "_ops.dq_results", "silver.er_metrics"),
    ]


# --- the app -------------------------------------------------------------------------------


def _query(search: str | None) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items() if v}


def plotly_bundle() -> str:
    """Where ``make dashboard-assets`` writes the custom Plotly.js bundle."""
    cache = os.environ.get(PLOTLY_CACHE_ENV) or os.path.expanduser("~/.cache/cardlake/plotly")
    return os.path.join(cache, PLOTLY_BUNDLE)


def _serve_plotly(app: dash.Dash, bundle: str | None) -> None:
    """Serves ``bundle`` where dcc.Graph fetches Plotly.js; without it, Dash's own bundle."""
    bundle = plotly_bundle() if bundle is None else bundle
    if not os.path.isfile(bundle):
        log.warning(
            "Plotly.js: no custom bundle at %s (`make dashboard-assets` builds it); "
            "charts use Dash's full bundle, slower to a first chart",
            bundle,
        )
        return
    folder, name = os.path.split(os.path.abspath(bundle))
    log.info("Plotly.js: the custom bundle %s (%.1f MB)", bundle, os.path.getsize(bundle) / 1e6)

    # a path without converters: Flask matches it before Dash's component-suites rule
    @app.server.route("/" + PLOTLY_JS)
    def plotly_js() -> Any:
        return send_from_directory(folder, name, mimetype="text/javascript", max_age=0)


class _Dashboard(dash.Dash):
    """Dash whose first page load asks at once for what the page will draw with (see above)."""

    def interpolate_index(
        self,
        metas: Any = "",
        title: Any = "",
        css: Any = "",
        config: Any = "",
        scripts: Any = "",
        app_entry: Any = "",
        favicon: Any = "",
        renderer: Any = "",
    ) -> Any:
        prefix = self.config.requests_pathname_prefix
        path = flask.request.path.removeprefix(prefix.rstrip("/")) or "/"
        head = [metas]
        if path in CHART_PAGES or (path == "/customer" and "key" in flask.request.args):
            head.append(f'<link rel="preload" as="script" href="{prefix}{PLOTLY_JS}">')
        if path == "/":
            head.append(f'<script src="{prefix}{WORLD_JS}"></script>')
        return super().interpolate_index(
            metas="".join(head),
            title=title,
            css=css,
            config=config,
            scripts=scripts,
            app_entry=app_entry,
            favicon=favicon,
            renderer=renderer,
        )


def create_app(
    lake_root: str,
    *,
    role: str = DEFAULT_ROLE,
    refresh_ms: int = LIVE_REFRESH_MS,
    profiles_dir: str | None = None,
    warm: bool = False,
    plotly_js: str | None = None,
) -> dash.Dash:
    """The dashboard over the lake at ``lake_root``, for viewers with ``role``.

    Charts draw with the Plotly.js bundle at ``plotly_js`` (default: :func:`plotly_bundle`),
    or with Dash's own when that file is missing.

    With ``warm``, every page's first view (no query string) is drawn before this returns, so
    that the first visitor finds it cached (tables opened, queries run, Plotly's first figure
    built, the masking rules read). It is cached by every table's commit like any drawn page:
    a table that changes later draws the page afresh from its new version.
    """
    check_role(role)
    lake = Lake(lake_root)
    app = _Dashboard(
        __name__,
        assets_folder=ASSETS,
        title="Cardlake",
        suppress_callback_exceptions=True,
        update_title="",
        health_endpoint="health",
    )
    nav = html.Nav(
        [dcc.Link(label, href=path, className="nav-link") for path, label in PAGES]
        + [html.Span(f"role: {role}", className="nav-role")]
    )
    app.layout = html.Div(
        [
            dcc.Location(id="url"),
            html.Header([html.H1("Cardlake"), nav]),
            dcc.Loading(html.Main(id="page"), delay_show=400),
        ]
    )

    # a drawn page by (path, query, every table's commit): any new commit draws it afresh
    pages: OrderedDict[tuple[str, str, Any], Any] = OrderedDict()
    pages_lock = threading.Lock()

    def draw(pathname: str, search: str) -> Any:
        query = _query(search)
        title = dict(PAGES).get(pathname)
        if title is None:
            return html.Div(f"no page at {pathname}", id="not-found")
        builders: dict[str, Callable[[], list[Any]]] = {
            "/": lambda: portfolio_page(lake, query),
            "/segments": lambda: segments_page(lake, query),
            "/risk": lambda: risk_page(lake, query),
            "/customer": lambda: customer_page(lake, query, role),
            "/live": lambda: live_page(lake, query, refresh_ms, role),
            "/experiment": lambda: experiment_page(lake, query),
            "/quality": lambda: quality_page(lake, query, profiles_dir),
        }
        key = (pathname, search, lake.fingerprint())
        with pages_lock:
            if key in pages:
                pages.move_to_end(key)
                return pages[key]
        try:
            body = builders[pathname]()
        except TableNotBuilt as missing:
            body = [not_built(missing.name)]
        out = html.Div([html.H2(title, id="page-title"), *body], id=f"page-{title.split()[0]}")
        with pages_lock:
            pages[key] = out
            while len(pages) > PAGE_CACHE_SIZE:
                pages.popitem(last=False)
        return out

    @app.callback(Output("page", "children"), Input("url", "pathname"), Input("url", "search"))
    def route(pathname: str | None, search: str | None) -> Any:
        return draw(pathname or "/", search or "")

    if warm:
        started = time.perf_counter()
        governance_rules()
        for path, _ in PAGES:
            try:
                draw(path, "")
            except Exception:  # a page that cannot be drawn must not keep the others from serving
                log.exception("could not draw %s at start-up; it is drawn when visited", path)
        log.info("drew every page's first view in %.2f s", time.perf_counter() - started)

    @app.callback(
        Output("kpi-cards", "children"),
        Output("month-panels", "children"),
        Input("month-picker", "value"),
        prevent_initial_call=True,
    )
    def pick_month(month: str) -> Any:
        return portfolio_cards(lake, month), portfolio_month_panels(lake, month)

    @app.callback(
        Output("url", "search"),
        Input("customer-search-button", "n_clicks"),
        Input("customer-search", "n_submit"),
        State("customer-search", "value"),
        prevent_initial_call=True,
    )
    def search(clicks: Any, submit: Any, text: str | None) -> str:
        from urllib.parse import urlencode

        if not clicks and not submit:  # the page was just drawn: nothing was asked yet
            raise dash.exceptions.PreventUpdate
        return "?" + urlencode({"q": (text or "").strip()})

    @app.callback(
        Output("live-content", "children"),
        Input("live-tick", "n_intervals"),
        prevent_initial_call=True,
    )
    def refresh_live(_n: Any) -> Any:
        return live_content(lake, role)

    _serve_plotly(app, plotly_js)

    name, topojson_path = WORLD_TOPOJSON
    with open(topojson_path) as fh:
        world_js = (
            "window.PlotlyGeoAssets = window.PlotlyGeoAssets || {topojson: {}};\n"
            f"window.PlotlyGeoAssets.topojson[{json.dumps(name)}] = {fh.read()};\n"
        )

    @app.server.route("/" + WORLD_JS)
    def world() -> Any:
        return flask.Response(world_js, mimetype="text/javascript")

    if profiles_dir:

        @app.server.route("/profiles/<path:name>")
        def profile(name: str) -> Any:
            if not name.endswith(".html"):
                abort(404)
            return send_from_directory(profiles_dir, name)

    return app


def serve(
    lake_root: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    role: str = DEFAULT_ROLE,
    profiles_dir: str | None = None,
) -> None:
    """Serves the dashboard until interrupted (Flask's threaded server, loopback by default)."""
    app = create_app(lake_root, role=role, profiles_dir=profiles_dir, warm=True)
    log.info("dashboard on http://%s:%d (role %s, lake %s)", host, port, role, lake_root)
    app.run(host=host, port=port, debug=False)
