"""The analysts' SQL (``sql/analytics/*.sql``) run on DuckDB over the lake's snapshots, charted.

The files are written in Spark SQL for ``make sql``; DuckDB runs them unchanged once the gold
tables are bound by name (``gold.fact_transactions``) and the two Spark functions they use that
DuckDB spells differently are defined as macros (``percentile_approx``, ``date_format`` with
the ``yyyy-MM`` and ``yyyy-MM-dd`` patterns). Each query gets the chart its question asks for:
world maps for users and birth year by country, box plots of amount and count by month, mixes
over time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from cardlake.config import PROJECT_ROOT
from cardlake.serve.lake import Lake

ANALYTICS_DIR = PROJECT_ROOT / "sql" / "analytics"
_TABLE_REF = re.compile(r"\b(gold|silver|bronze)\.([a-z][a-z0-9_]*)\b")
SPARK_COMPAT = (
    "create or replace macro percentile_approx(x, p) as approx_quantile(x, p)",
    "create or replace macro date_format(d, f) as case f "
    "when 'yyyy-MM' then strftime(d::timestamp, '%Y-%m') "
    "when 'yyyy-MM-dd' then strftime(d::timestamp, '%Y-%m-%d') "
    "else error('date_format: only yyyy-MM and yyyy-MM-dd are mapped to DuckDB') end",
)


def iso3(code: str) -> str | None:
    """ISO 3166 alpha-3 of an alpha-2 or alpha-3 country code; None when unknown."""
    import pycountry

    found = pycountry.countries.get(alpha_2=code) if len(code) == 2 else None
    return found.alpha_3 if found else (code if len(code) == 3 else None)


def run_sql(lake: Lake, sql: str) -> pd.DataFrame:
    """Spark-dialect analytics SQL on DuckDB, every ``layer.table`` it names bound by name."""
    names = sorted({f"{m.group(1)}.{m.group(2)}" for m in _TABLE_REF.finditer(sql)})
    snaps = {name: lake.snapshot(name) for name in names}
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        for stmt in SPARK_COMPAT:
            con.execute(stmt)
        for name, snap in snaps.items():
            layer, table = name.split(".")
            alias = f"_{layer}_{table}"
            con.register(alias, snap.data)
            con.execute(f"create schema if not exists {layer}")
            con.execute(f"create or replace view {layer}.{table} as select * from {alias}")
        return con.execute(sql).fetchdf()
    finally:
        con.close()


def queries() -> dict[str, str]:
    return {p.stem: p.read_text().strip().rstrip(";") for p in sorted(ANALYTICS_DIR.glob("*.sql"))}


def question(sql: str) -> str:
    """The question a file answers: its leading comment lines."""
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line.lstrip("- ").strip())
    return " ".join(lines)


@dataclass(frozen=True)
class AnalyticsChart:
    name: str
    question: str
    figures: tuple[go.Figure, ...]
    result: pd.DataFrame


def _box_from_quartiles(df: pd.DataFrame, x: str, title: str) -> go.Figure:
    fig = go.Figure(
        go.Box(
            x=df[x],
            q1=df["p25_usd"],
            median=df["median_usd"],
            q3=df["p75_usd"],
            lowerfence=[0.0] * len(df),
            upperfence=df["max_usd"],
            mean=df["mean_usd"],
            name="amount (USD)",
        )
    )
    fig.update_layout(title=title)
    return fig


def _world(df: pd.DataFrame, value: str, title: str, scale: str) -> go.Figure:
    shown = df.assign(iso3=[iso3(str(c)) for c in df["country"]]).dropna(subset=["iso3"])
    fig = px.choropleth(
        shown,
        locations="iso3",
        color=value,
        hover_name="country",
        color_continuous_scale=scale,
        title=title,
    )
    fig.update_geos(
        showframe=False, projection_type="natural earth", fitbounds="locations", showcountries=True
    )
    return fig


CHARTS: dict[str, Callable[[pd.DataFrame], tuple[go.Figure, ...]]] = {
    "01_usd_amount_by_state": lambda df: (
        _box_from_quartiles(df, "state", "USD amount by transaction state"),
    ),
    "02_top_earning_type_completed": lambda df: (
        px.bar(
            df,
            x="channel",
            y=["fee_revenue_usd", "fx_margin_usd"],
            title="Revenue from completed transactions by channel",
        ),
    ),
    "03_non_completed_value_by_type": lambda df: (
        px.bar(
            df,
            x="channel",
            y="non_completed_value_usd",
            title="Value of transactions that did not complete, by channel",
        ),
    ),
    "04_new_joiners_by_day": lambda df: (
        px.line(df, x="join_date", y="new_customers", title="New joiners by day"),
    ),
    "05_users_and_birth_year_by_country": lambda df: (
        _world(df, "customers", "Customers by country", "Blues"),
        _world(df, "avg_birth_year", "Average year of birth by country", "Viridis"),
    ),
    "06_plan_mix_by_month": lambda df: (
        px.area(df, x="month", y="share", color="plan_type", title="Plan mix by month"),
    ),
    "07_notifications_by_month": lambda df: (
        px.bar(
            df,
            x="month",
            y=["notifications_sent", "notifications_failed"],
            barmode="group",
            title="Notifications sent and failed by month",
        ),
    ),
    "08_outliers_by_month": lambda df: (
        px.line(
            df,
            x="month",
            y=["amount_outliers", "count_outliers"],
            markers=True,
            title="Customer-months more than 3 SD above the month's mean",
        ),
    ),
    "09_direction_and_type_mix_by_month": lambda df: (
        px.bar(
            df.assign(kind=df["direction"] + " " + df["channel"]),
            x="month",
            y="count_share",
            color="kind",
            title="Direction and type mix by month",
        ),
    ),
}


def monthly_boxes(lake: Lake) -> tuple[go.Figure, go.Figure]:
    """Box plots of customer-month spend and transaction count by month (quartiles in SQL)."""
    df = lake.query(
        """
        select month,
               quantile_cont(spend_usd, 0.25) as s_q1, median(spend_usd) as s_med,
               quantile_cont(spend_usd, 0.75) as s_q3, min(spend_usd) as s_min,
               max(spend_usd) as s_max,
               quantile_cont(tx_count, 0.25) as c_q1, median(tx_count) as c_med,
               quantile_cont(tx_count, 0.75) as c_q3, min(tx_count) as c_min,
               max(tx_count) as c_max
        from f group by month order by month
        """,
        f="gold.customer_monthly_features",
    )
    figs = []
    for p, label in (
        ("s", "Spend per customer (USD) by month"),
        ("c", "Transactions per customer by month"),
    ):
        fig = go.Figure(
            go.Box(
                x=df["month"],
                q1=df[f"{p}_q1"],
                median=df[f"{p}_med"],
                q3=df[f"{p}_q3"],
                lowerfence=df[f"{p}_min"],
                upperfence=df[f"{p}_max"],
                name=label,
            )
        )
        fig.update_layout(title=label)
        figs.append(fig)
    return figs[0], figs[1]


def analytics_charts(lake: Lake) -> list[AnalyticsChart]:
    """Every analytics query's result and charts (a query without a chart gets its table)."""
    out = []
    for name, sql in queries().items():
        df = run_sql(lake, sql)
        make = CHARTS.get(name)
        out.append(
            AnalyticsChart(
                name=name,
                question=question(sql),
                figures=make(df) if make and not df.empty else (),
                result=df,
            )
        )
    return out
