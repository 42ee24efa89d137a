"""The monthly executive report: HTML and PDF under ``reports/`` from the lake (read-only).

The figures come from the same queries as the dashboard (:mod:`cardlake.serve.data`); the
narrative is templated sentences filled from them (no number is written by hand). Charts are
Plotly figures, so the report's maps and box plots are the dashboard's. The PDF is the HTML
printed by Chromium (Debian's package, driven through Playwright's Python API; no browser is
downloaded): one layout for both outputs, with the charts drawn by the same plotly.js, which
WeasyPrint (no JavaScript) or matplotlib's PdfPages (a second set of charts) would not give.

    python jobs/report.py --month 2025-06    # reports/cardlake-2025-06.html and .pdf
"""

from __future__ import annotations

import html
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from cardlake.months import shift
from cardlake.serve import analytics, data
from cardlake.serve.lake import Lake, TableNotBuilt

log = logging.getLogger("cardlake.serve.report")

CHROMIUM = os.environ.get("CARDLAKE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ASSETS = os.path.join(os.path.dirname(__file__), "assets")
RENDER_TIMEOUT_MS = 60_000

KPIS = (
    ("tx_count", "Transactions", "count"),
    ("tx_value_usd", "Transaction value", "usd"),
    ("revenue_usd", "Revenue (fees + FX margin)", "usd"),
    ("success_rate", "Success rate", "rate"),
    ("active_customers", "Active customers", "count"),
    ("new_customers", "New customers", "count"),
    ("notifications_failed", "Failed notifications", "count"),
    ("fraud_reported_count", "Reported fraud", "count"),
)


class ReportError(RuntimeError):
    """The report cannot be written (no such month, no browser for the PDF)."""


def fmt(value: Any, kind: str) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    if kind == "usd":
        return f"${float(value):,.2f}"
    if kind == "rate":
        return f"{100 * float(value):.2f}%"
    return f"{int(value):,}"


def change(cur: Any, base: Any) -> float | None:
    """Relative change of ``cur`` against ``base`` (None when there is no base)."""
    if base is None or pd.isna(base) or pd.isna(cur) or float(base) == 0:
        return None
    return (float(cur) - float(base)) / abs(float(base))


def fmt_change(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}%"


@dataclass
class KpiRow:
    key: str
    label: str
    kind: str
    value: Any
    previous: Any
    year_ago: Any

    @property
    def vs_previous(self) -> float | None:
        return change(self.value, self.previous)

    @property
    def vs_year_ago(self) -> float | None:
        return change(self.value, self.year_ago)


@dataclass
class ReportData:
    month: str
    kpis: list[KpiRow]
    narrative: list[str] = field(default_factory=list)
    sections: list[tuple[str, list[Any]]] = field(default_factory=list)
    versions: str = ""


def kpi_rows(kpis: pd.DataFrame, month: str) -> list[KpiRow]:
    by_month = kpis.set_index("month")
    if month not in by_month.index:
        have = by_month.index.tolist()
        raise ReportError(
            f"no KPIs for {month} in gold.kpi_monthly (it has {have[0]} to {have[-1]})"
            if have
            else "gold.kpi_monthly is empty"
        )

    def at(m: str, key: str) -> Any:
        return by_month.at[m, key] if m in by_month.index else None

    prev, year = shift(month, -1), shift(month, -12)
    return [
        KpiRow(key, label, kind, at(month, key), at(prev, key), at(year, key))
        for key, label, kind in KPIS
        if key in by_month.columns
    ]


def narrative(month: str, rows: list[KpiRow], extras: dict[str, Any]) -> list[str]:
    """Plain sentences from the figures; every number comes from ``rows`` or ``extras``."""
    by = {r.key: r for r in rows}
    out = []
    tx = by.get("tx_count")
    if tx is not None:
        trend = (
            ""
            if tx.vs_previous is None
            else f", {'up' if tx.vs_previous >= 0 else 'down'} "
            f"{abs(100 * tx.vs_previous):.1f}% on the previous month"
        )
        out.append(
            f"In {month} customers made {fmt(tx.value, 'count')} transactions worth "
            f"{fmt(by['tx_value_usd'].value, 'usd')}{trend}."
        )
    rev = by.get("revenue_usd")
    if rev is not None:
        year = (
            ""
            if rev.vs_year_ago is None
            else f" ({fmt_change(rev.vs_year_ago)} against a year ago)"
        )
        out.append(f"Revenue from fees and FX margin was {fmt(rev.value, 'usd')}{year}.")
    ok = by.get("success_rate")
    if ok is not None and ok.previous is not None and not pd.isna(ok.previous):
        points = 100 * (float(ok.value) - float(ok.previous))
        out.append(
            f"{fmt(ok.value, 'rate')} of transactions completed "
            f"({points:+.2f} points on the previous month)."
        )
    act = by.get("active_customers")
    if act is not None:
        out.append(
            f"{fmt(act.value, 'count')} customers were active "
            f"({fmt_change(act.vs_previous)} on the previous month)."
        )
    if extras.get("largest_move"):
        src, dst, n = extras["largest_move"]
        out.append(f"The largest segment movement was {n:,} customers from {src} to {dst}.")
    if extras.get("high_risk") is not None:
        out.append(
            f"{extras['high_risk']:,} customers are in the High risk tier and "
            f"{extras['medium_risk']:,} in Medium."
        )
    fraud = by.get("fraud_reported_count")
    if fraud is not None:
        alerts = extras.get("fraud_alerts")
        tail = "" if alerts is None else f"; the fraud model raised {alerts:,} alerts"
        out.append(f"Customers reported {fmt(fraud.value, 'count')} fraudulent transactions{tail}.")
    return out


def _figure_html(fig: go.Figure, height: int = 320) -> str:
    fig.update_layout(
        height=height,
        width=900,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        template="plotly_white",
    )
    return str(
        pio.to_html(fig, full_html=False, include_plotlyjs=False, config={"staticPlot": True})
    )


def _table_html(df: pd.DataFrame, max_rows: int = 30) -> str:
    return str(
        df.head(max_rows).to_html(
            index=False, border=0, classes="table", float_format=lambda v: f"{v:,.4g}", na_rep=""
        )
    )


def _optional(build: Any) -> list[Any]:
    try:
        return list(build())
    except TableNotBuilt as missing:
        return [
            f"<p class='not-built'>{html.escape(missing.name)}: not built yet "
            f"(run <code>{html.escape(data.built_by(missing.name))}</code>).</p>"
        ]


def collect(lake: Lake, month: str, *, with_analytics: bool = True) -> ReportData:
    """Every figure, chart and sentence of the report for ``month``."""
    import plotly.express as px

    kpis = data.kpi_monthly(lake)
    rows = kpi_rows(kpis, month)
    extras: dict[str, Any] = {}
    upto = kpis[kpis["month"] <= month]

    def trends() -> list[Any]:
        fig = go.Figure()
        fig.add_bar(x=upto["month"], y=upto["tx_value_usd"], name="transaction value (USD)")
        fig.add_scatter(
            x=upto["month"],
            y=upto["revenue_usd"],
            name="revenue (USD)",
            yaxis="y2",
            mode="lines+markers",
        )
        fig.update_layout(
            title="Value and revenue by month", yaxis2={"overlaying": "y", "side": "right"}
        )
        return [_figure_html(fig)]

    def channels() -> list[Any]:
        df = data.by_channel(lake, month)
        return [
            _figure_html(
                px.bar(df, x="channel", y="revenue_usd", title=f"Revenue by channel, {month}"), 280
            ),
            _table_html(df),
        ]

    def segments() -> list[Any]:
        mig = data.segment_migration(lake, month)
        moved = mig[mig["from_segment"] != mig["to_segment"]].sort_values(
            ["customers", "from_segment", "to_segment"], ascending=[False, True, True]
        )
        if not moved.empty:
            top = moved.iloc[0]
            extras["largest_move"] = (top["from_segment"], top["to_segment"], int(top["customers"]))
        sizes = data.segment_sizes(lake)
        sizes = sizes[sizes["month"] <= month]
        fig = px.bar(
            sizes, x="month", y="customers", color="segment", title="Customers per segment"
        )
        return [
            _figure_html(fig, 300),
            "<h4>Largest movements into another segment</h4>",
            _table_html(moved.head(8)),
        ]

    def risk() -> list[Any]:
        queue = data.risk_queue(lake)
        counts = queue["tier"].value_counts()
        extras["high_risk"] = int(counts.get("High", 0))
        extras["medium_risk"] = int(counts.get("Medium", 0))
        tiers = lake.query(
            "select month, tier, count(*) as customers from r group by 1, 2 order by 1, 2",
            r="gold.customer_risk",
        )
        return [_table_html(tiers), "<h4>Highest scores</h4>", _table_html(queue.head(10))]

    def fraud() -> list[Any]:
        alerts = lake.query(
            "select month, count(*) as alerts from a group by 1 order by 1", a="gold.fraud_alerts"
        )
        this = alerts[alerts["month"] == month]
        extras["fraud_alerts"] = int(this["alerts"].iloc[0]) if len(this) else 0
        merged = (
            upto[["month", "fraud_reported_count", "fraud_rate"]]
            .merge(alerts, on="month", how="left")
            .fillna({"alerts": 0})
        )
        fig = go.Figure()
        fig.add_bar(x=merged["month"], y=merged["fraud_reported_count"], name="reported")
        fig.add_bar(x=merged["month"], y=merged["alerts"], name="model alerts")
        fig.update_layout(title="Fraud reported and alerted by month", barmode="group")
        return [_figure_html(fig, 280)]

    sections: list[tuple[str, list[Any]]] = [
        ("Trends", _optional(trends)),
        ("Channels", _optional(channels)),
        ("Segment movements", _optional(segments)),
        ("Risk", _optional(risk)),
        ("Fraud", _optional(fraud)),
    ]
    if with_analytics:
        sections.append(("Analytics questions", _optional(lambda: _analytics(lake))))
    report = ReportData(month=month, kpis=rows, sections=sections)
    report.narrative = narrative(month, rows, extras)
    report.versions = lake.version_label(
        "gold.kpi_monthly",
        "gold.fact_transactions",
        "gold.customer_segments",
        "gold.customer_risk",
        "gold.fraud_alerts",
    )
    return report


def _analytics(lake: Lake) -> list[Any]:
    parts: list[Any] = []
    spend, count = analytics.monthly_boxes(lake)
    parts += [
        "<h4>Amount and count per customer by month</h4>",
        _figure_html(spend, 300),
        _figure_html(count, 300),
    ]
    for chart in analytics.analytics_charts(lake):
        parts.append(f"<h4>{html.escape(chart.question)}</h4>")
        parts += [_figure_html(f, 360 if "country" in chart.name else 300) for f in chart.figures]
        if not chart.figures:
            parts.append(_table_html(chart.result))
    return parts


STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; color: #1d2733; margin: 24px; }
h1 { color: #12355b; margin-bottom: 0; } .sub { color: #5b6b7c; margin-top: 4px; }
h2 { color: #12355b; border-bottom: 1px solid #dde3ea; page-break-after: avoid; }
table.table { border-collapse: collapse; font-size: 12px; margin: 6px 0; }
table.table th, table.table td { border-bottom: 1px solid #e5e9ef; padding: 3px 8px;
  text-align: right; } table.table th { background: #f1f4f8; }
.kpis td:first-child, .kpis th:first-child { text-align: left; }
.narrative li { margin: 3px 0; } .versions { font-size: 10px; color: #6b7b8c; }
.not-built { background: #fff7e0; padding: 6px; }
.js-plotly-plot, .plot-container { page-break-inside: avoid; }
h4 { page-break-after: avoid; break-after: avoid; }
"""


def render_html(report: ReportData, *, plotly_js: str, geo_js: str) -> str:
    kpi_lines = "".join(
        f"<tr id='kpi-{r.key}'><td>{html.escape(r.label)}</td><td>{fmt(r.value, r.kind)}</td>"
        f"<td>{fmt(r.previous, r.kind)}</td><td>{fmt_change(r.vs_previous)}</td>"
        f"<td>{fmt(r.year_ago, r.kind)}</td><td>{fmt_change(r.vs_year_ago)}</td></tr>"
        for r in report.kpis
    )
    prev, year = shift(report.month, -1), shift(report.month, -12)
    sections = "".join(
        f"<h2>{html.escape(title)}</h2>" + "".join(str(p) for p in parts)
        for title, parts in report.sections
    )
    sentences = "".join(f"<li>{html.escape(s)}</li>" for s in report.narrative)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Cardlake monthly report {report.month}</title>
<style>{STYLE}</style>
<script src="{plotly_js}"></script><script src="{geo_js}"></script></head>
<body>
<h1>Cardlake monthly report: {report.month}</h1>
<p class="sub">Against the previous month ({prev}) and a year ago ({year}).</p>
<h2>Summary</h2><ul class="narrative" id="narrative">{sentences}</ul>
<h2>Key figures</h2>
<table class="table kpis" id="kpis"><tr><th>KPI</th><th>{report.month}</th><th>{prev}</th>
<th>change</th><th>{year}</th><th>change</th></tr>{kpi_lines}</table>
{sections}
<p class="versions">Source tables: {html.escape(report.versions)}</p>
</body></html>
"""


def _write_assets(out_dir: str) -> tuple[str, str]:
    """plotly.js and the world map next to the reports, referenced relatively (no CDN)."""
    assets = os.path.join(out_dir, "assets")
    os.makedirs(assets, exist_ok=True)
    plotly_js = os.path.join(assets, "plotly.min.js")
    if not os.path.exists(plotly_js):
        from plotly.offline import get_plotlyjs

        with open(plotly_js, "w") as fh:
            fh.write(get_plotlyjs())
    geo_js = os.path.join(assets, "world_110m.js")
    if not os.path.exists(geo_js):
        with open(os.path.join(ASSETS, "topojson", "world_110m.json")) as fh:
            topo = json.load(fh)
        with open(geo_js, "w") as fh:
            fh.write(
                "window.PlotlyGeoAssets = {topojson: {world_110m: "
                + json.dumps(topo, separators=(",", ":"))
                + "}};\n"
            )
    return "assets/plotly.min.js", "assets/world_110m.js"


def print_pdf(html_path: str, pdf_path: str) -> None:
    """Prints the HTML to PDF with Chromium once every chart has been drawn."""
    if not os.path.exists(CHROMIUM):
        raise ReportError(
            f"no Chromium at {CHROMIUM} for the PDF: install Debian's `chromium` "
            "(.ci/setup.d/20-chromium.sh) or pass --no-pdf"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto("file://" + os.path.abspath(html_path), wait_until="load")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.plotly-graph-div')]"
                ".every(d => d.querySelector('.main-svg'))",
                timeout=RENDER_TIMEOUT_MS,
            )
            page.pdf(
                path=pdf_path,
                format="A4",
                print_background=True,
                margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"},
            )
        finally:
            browser.close()


def write_report(
    lake_root: str,
    out_dir: str,
    *,
    month: str | None = None,
    pdf: bool = True,
    profiles: bool = True,
    with_analytics: bool = True,
) -> list[str]:
    """Writes ``cardlake-<month>.html`` (and ``.pdf``) into ``out_dir``; returns the paths.

    ``month`` defaults to the latest month in ``gold.kpi_monthly``. With ``profiles``, also a
    data profiling report per bronze source under ``out_dir/profiling``.
    """
    lake = Lake(lake_root)
    all_months = data.months(lake)
    if not all_months:
        raise ReportError("gold.kpi_monthly has no months yet: run `make run` first")
    month = month or all_months[-1]
    os.makedirs(out_dir, exist_ok=True)
    report = collect(lake, month, with_analytics=with_analytics)
    plotly_js, geo_js = _write_assets(out_dir)
    html_path = os.path.join(out_dir, f"cardlake-{month}.html")
    tmp = html_path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(render_html(report, plotly_js=plotly_js, geo_js=geo_js))
    shutil.move(tmp, html_path)
    paths = [html_path]
    if pdf:
        pdf_path = os.path.join(out_dir, f"cardlake-{month}.pdf")
        print_pdf(html_path, pdf_path)
        paths.append(pdf_path)
    if profiles:
        from cardlake.serve.profiling import write_profiles

        paths += write_profiles(lake, os.path.join(out_dir, "profiling"))
    log.info("report for %s: %s", month, ", ".join(paths))
    return paths
