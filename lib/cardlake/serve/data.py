"""The figures each dashboard page and the report show, read from the lake with DuckDB.

One function per panel, each returning a pandas DataFrame (or a small dataclass) computed by
SQL over the tables' latest snapshots; the pages only lay them out. A function whose table is
not built yet raises :class:`~cardlake.serve.lake.TableNotBuilt` and the page shows which
``make`` target builds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cardlake.serve.lake import Lake, TableNotBuilt
from cardlake.serve.masking import mask_frame, mask_value

BUILT_BY = {
    "bronze": "make bronze",
    "_quarantine": "make bronze",
    "_ops": "make bronze",
    "silver": "make silver",
    "gold.customer_segments": "make train-segmentation",
    "gold.engagement_scores": "make train-engagement",
    "gold.experiment_assignment": "make train-engagement",
    "gold.fraud_alerts": "make train-fraud",
    "gold.customer_risk": "make train-risk",
    "gold.fraud_alerts_live": "make stream",
    "gold": "make gold",
}


def built_by(name: str) -> str:
    """The make target that writes ``name`` (for "not built yet" panels)."""
    return BUILT_BY.get(name) or BUILT_BY.get(name.split(".", 1)[0], "make run")


# --- portfolio -----------------------------------------------------------------------------


def months(lake: Lake) -> list[str]:
    """Months in ``gold.kpi_monthly``, oldest first."""
    df = lake.query("select distinct month from k order by month", k="gold.kpi_monthly")
    return [str(m) for m in df["month"]]


def kpi_monthly(lake: Lake) -> pd.DataFrame:
    return lake.query("select * from k order by month", k="gold.kpi_monthly")


def by_channel(lake: Lake, month: str) -> pd.DataFrame:
    """Volume, value, revenue and success rate by channel in one month."""
    return lake.query(
        """
        select coalesce(channel, 'unknown') as channel,
               count(*) as tx_count,
               coalesce(sum(amount_usd), 0) as value_usd,
               coalesce(sum(fee_usd), 0) + coalesce(sum(fx_margin_usd), 0) as revenue_usd,
               avg(case when state = 'completed' then 1.0 else 0.0 end) as success_rate
        from t where month = ? group by 1 order by tx_count desc, channel
        """,
        [month],
        t="gold.fact_transactions",
    )


def by_country(lake: Lake, month: str) -> pd.DataFrame:
    return lake.query(
        "select * from c where month = ? order by customers desc, country",
        [month],
        c="gold.kpi_country_monthly",
    )


def plan_mix(lake: Lake) -> pd.DataFrame:
    return lake.query("select * from p order by month, plan_type", p="gold.kpi_plan_monthly")


# --- segments ------------------------------------------------------------------------------

PROFILE_FEATURES = (
    ("spend_usd", "monthly spend"),
    ("tx_count", "transactions"),
    ("online_rate", "online share"),
    ("atm_rate", "cash (ATM) share"),
    ("cross_border_rate", "cross-border share"),
    ("spend_volatility_usd", "spend volatility"),
    ("discretionary_share", "discretionary share"),
)
PROFILE_WORDS = 3  # the most distinctive traits only
_HIGH, _LOW = 1.25, 0.75  # a segment's mean this far above/below the month's mean is "high"/"low"


def segment_sizes(lake: Lake) -> pd.DataFrame:
    """Customers per segment and month."""
    return lake.query(
        "select month, segment, count(*) as customers from s group by 1, 2 order by 1, 2",
        s="gold.customer_segments",
    )


def segment_profiles(lake: Lake, month: str) -> pd.DataFrame:
    """Each segment's mean features in ``month`` and a plain-words profile against the mean."""
    means = ", ".join(f"avg(f.{c}) as {c}" for c, _ in PROFILE_FEATURES)
    df = lake.query(
        f"""
        select s.segment, count(*) as customers, {means}
        from s join f on f.customer_key = s.customer_key and f.month = s.month
        where s.month = ? group by s.segment order by customers desc, s.segment
        """,
        [month],
        s="gold.customer_segments",
        f="gold.customer_monthly_features",
    )
    overall = {
        c: (df[c] * df["customers"]).sum() / max(df["customers"].sum(), 1)
        for c, _ in PROFILE_FEATURES
    }
    df["profile"] = [describe_profile(row, overall) for _, row in df.iterrows()]
    return df


def describe_profile(row: Any, overall: dict[str, float]) -> str:
    """``high online share, low cash (ATM) share`` from a segment's means against the month's."""
    found = []  # (how far from the mean, feature order, words)
    for order, (column, label) in enumerate(PROFILE_FEATURES):
        base, value = overall.get(column) or 0.0, row[column]
        if base <= 0 or pd.isna(value):
            continue
        ratio = value / base
        if ratio >= _HIGH or ratio <= _LOW:
            found.append((-abs(ratio - 1), order, f"{'high' if ratio > 1 else 'low'} {label}"))
    words = [w for _, _, w in sorted(found)[:PROFILE_WORDS]]
    return ", ".join(words) or "close to the average customer"


def segment_migration(lake: Lake, month: str) -> pd.DataFrame:
    """Customers by (segment the month before, segment in ``month``)."""
    return lake.query(
        """
        with cur as (select customer_key, segment from s where month = ?),
             prev as (select customer_key, segment from s
                      where month = (select max(month) from s where month < ?))
        select prev.segment as from_segment, cur.segment as to_segment, count(*) as customers
        from cur join prev using (customer_key)
        group by 1, 2 order by 1, 2
        """,
        [month, month],
        s="gold.customer_segments",
    )


def segment_months(lake: Lake) -> list[str]:
    df = lake.query("select distinct month from s order by month", s="gold.customer_segments")
    return [str(m) for m in df["month"]]


# --- risk ----------------------------------------------------------------------------------

QUEUE_TIERS = ("High", "Medium")


def risk_queue(lake: Lake) -> pd.DataFrame:
    """The latest month's High then Medium customers, highest score first, reasons in words."""
    df = lake.query(
        """
        select customer_key, month, risk_score, tier,
               array_to_string(reasons, '; ') as reasons,
               round(at_risk_probability, 4) as at_risk_probability
        from r
        where month = (select max(month) from r) and tier in ('High', 'Medium')
        order by case tier when 'High' then 0 else 1 end, risk_score desc, customer_key
        """,
        r="gold.customer_risk",
    )
    return df


# --- customer 360 --------------------------------------------------------------------------

SEARCH_LIMIT = 20


def search_customers(lake: Lake, text: str) -> pd.DataFrame:
    """Current customers whose key, name or email contains ``text`` (case-insensitive)."""
    needle = f"%{text.strip().lower()}%"
    return lake.query(
        """
        select customer_key, first_name, last_name, email, country
        from c
        where lower(customer_key) like ? or lower(email) like ?
           or lower(concat_ws(' ', first_name, last_name)) like ?
        order by customer_key limit ?
        """,
        [needle, needle, needle, SEARCH_LIMIT],
        c="silver.customers",
    )


@dataclass
class Customer360:
    """Everything the 360 page shows about one customer (personal fields already masked)."""

    customer_key: str
    record: list[tuple[str, Any, str]]  # (attribute, value shown, where it came from)
    features: pd.DataFrame
    segment: str | None = None
    engagement: float | None = None
    risk: dict[str, Any] | None = None
    alerts: pd.DataFrame = field(default_factory=pd.DataFrame)
    interactions: pd.DataFrame = field(default_factory=pd.DataFrame)
    missing: list[str] = field(default_factory=list)


RECORD_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "country",
    "city",
    "plan_type",
    "join_date",
    "status",
)
FEATURE_SPARKS = ("spend_usd", "tx_count", "failed_rate", "service_contacts")


def _optional(
    lake: Lake, out: Customer360, sql: str, params: list[Any], **tables: str
) -> pd.DataFrame | None:
    try:
        return lake.query(sql, params, **tables)
    except TableNotBuilt as missing:
        out.missing.append(missing.name)
        return None


def _source(source: Any, role: str) -> str:
    """``crm_customers:CRM-1000298``: analysts see the source, not the source record's id."""
    if source is None or (isinstance(source, float) and pd.isna(source)):
        return ""
    text = str(source)
    return text if role == "privileged" else text.split(":", 1)[0]


def customer_360(lake: Lake, customer_key: str, role: str) -> Customer360 | None:
    """The golden record (masked for ``role``) and what the lake knows about the customer."""
    rec = lake.query("select * from c where customer_key = ?", [customer_key], c="silver.customers")
    if rec.empty:
        return None
    row = rec.iloc[0].to_dict()
    sources = row.get("attribute_sources") or row.get("lineage") or {}
    if isinstance(sources, list | tuple):  # a map arrives as a list of (key, value) pairs
        sources = dict(sources)
    shown = [f for f in RECORD_FIELDS if f in row] or [c for c in rec.columns if c != "lineage"]
    record = [
        (f, mask_value(f, row[f], role), _source(sources.get(f) if sources else None, role))
        for f in shown
    ]
    out = Customer360(customer_key=customer_key, record=record, features=pd.DataFrame())
    feats = _optional(
        lake,
        out,
        "select * from f where customer_key = ? order by month",
        [customer_key],
        f="gold.customer_monthly_features",
    )
    out.features = feats if feats is not None else pd.DataFrame()
    seg = _optional(
        lake,
        out,
        "select segment from s where customer_key = ? order by month desc limit 1",
        [customer_key],
        s="gold.customer_segments",
    )
    if seg is not None and not seg.empty:
        out.segment = str(seg.iloc[0]["segment"])
    eng = _optional(
        lake,
        out,
        "select score from e where customer_key = ? order by month desc limit 1",
        [customer_key],
        e="gold.engagement_scores",
    )
    if eng is not None and not eng.empty:
        out.engagement = float(eng.iloc[0]["score"])
    risk = _optional(
        lake,
        out,
        "select month, risk_score, tier, "
        "array_to_string(reasons, '; ') as reasons from r where customer_key = ? "
        "order by month desc limit 1",
        [customer_key],
        r="gold.customer_risk",
    )
    if risk is not None and not risk.empty:
        out.risk = risk.iloc[0].to_dict()
    alerts = _optional(
        lake,
        out,
        "select ts, round(amount_usd, 2) as amount_usd, "
        "round(score, 3) as score, array_to_string(reasons, '; ') as reasons "
        "from a where customer_key = ? order by ts desc limit 20",
        [customer_key],
        a="gold.fraud_alerts",
    )
    out.alerts = alerts if alerts is not None else pd.DataFrame()
    inter = _optional(
        lake,
        out,
        "select * exclude (customer_key) from i "
        "where customer_key = ? order by month desc limit 20",
        [customer_key],
        i="gold.fact_interactions",
    )
    if inter is not None:  # surrogate keys mean nothing to an agent
        inter = mask_frame(
            inter[[c for c in inter.columns if not c.endswith("_sk")]],
            role,
            table="gold.fact_interactions",
        )
    out.interactions = inter if inter is not None else pd.DataFrame()
    return out


# --- live alerts ---------------------------------------------------------------------------

LIVE_LIMIT = 50


def live_alerts(lake: Lake, limit: int = LIVE_LIMIT) -> pd.DataFrame:
    """The newest alerts of the stream, newest first, with each one's latency in seconds:
    from the time the event was sent (``sent_time``, where the stream records it; else the
    event time) to the alert's commit (``alert_time``)."""
    snap = lake.snapshot("gold.fraud_alerts_live")
    names = set(snap.data.schema.names)
    event = "event_time" if "event_time" in names else "ts"
    alert = "alert_time" if "alert_time" in names else event
    start = "sent_time" if "sent_time" in names else event
    keep = [
        c
        for c in (
            "event_id",
            "transaction_id",
            "card_token",
            "customer_key",
            "amount_usd",
            "score",
            "threshold",
        )
        if c in names
    ]
    code_col = next((c for c in ("reason_codes", "reasons") if c in names), None)
    reasons = f", array_to_string({code_col}, '; ') as reasons" if code_col else ""
    return lake.query(
        f"""
        select {", ".join(keep)}{reasons}, {event} as event_time, {alert} as alert_time,
               round(epoch_ms({alert}::timestamp) / 1000.0
                     - epoch_ms({start}::timestamp) / 1000.0, 3) as latency_s
        from a order by {alert} desc, {event} desc limit ?
        """,
        [limit],
        a="gold.fraud_alerts_live",
    )


# --- experiment ----------------------------------------------------------------------------

BALANCE_FEATURES = ("score", "spend_usd", "tx_count", "tenure_months", "age", "credit_score")


def experiment_sizes(lake: Lake) -> pd.DataFrame:
    return lake.query(
        'select experiment, month, "group", count(*) as customers from x '
        "group by 1, 2, 3 order by 1, 2, 3",
        x="gold.experiment_assignment",
    )


def experiment_balance(lake: Lake) -> pd.DataFrame:
    """Mean of each covariate per group and the standardised mean difference (SMD), in one
    scan of the assignment joined to the features."""
    stats = ", ".join(
        f"avg({source}.{col}) as {col}__mean, var_samp({source}.{col}) as {col}__var"
        for col, source in ((c, "x" if c == "score" else "f") for c in BALANCE_FEATURES)
    )
    df = lake.query(
        f"""
        select x."group" as grp, {stats}
        from x left join f on f.customer_key = x.customer_key and f.month = x.month
        group by 1
        """,
        x="gold.experiment_assignment",
        f="gold.customer_monthly_features",
    ).set_index("grp")
    rows = []
    if {"test", "control"} <= set(df.index):
        t, c = df.loc["test"], df.loc["control"]
        for col in BALANCE_FEATURES:
            pooled = ((t[f"{col}__var"] or 0.0) + (c[f"{col}__var"] or 0.0)) / 2
            diff = t[f"{col}__mean"] - c[f"{col}__mean"]
            rows.append(
                {
                    "covariate": col,
                    "test_mean": t[f"{col}__mean"],
                    "control_mean": c[f"{col}__mean"],
                    "smd": diff / pooled**0.5 if pooled > 0 else 0.0,
                }
            )
    return pd.DataFrame(rows, columns=["covariate", "test_mean", "control_mean", "smd"])


def experiment_outcomes(lake: Lake) -> pd.DataFrame:
    """Per group, the next month's active share and spend, for months whose next month exists."""
    return lake.query(
        """
        with nxt as (
            select x."group" as grp, x.month, f.is_active, f.spend_usd
            from x join f on f.customer_key = x.customer_key
             and f.month = strftime(strptime(x.month || '-01', '%Y-%m-%d') + interval 1 month,
                                    '%Y-%m')
        )
        select month, grp as "group", count(*) as customers,
               avg(case when is_active then 1.0 else 0.0 end) as active_next_month,
               avg(spend_usd) as spend_next_month_usd
        from nxt group by 1, 2 order by 1, 2
        """,
        x="gold.experiment_assignment",
        f="gold.customer_monthly_features",
    )


# --- data quality --------------------------------------------------------------------------


def quarantine_counts(lake: Lake) -> pd.DataFrame:
    """Quarantined rows by source, reason and ingest month, across every quarantine table."""
    frames = []
    for name in lake.tables("_quarantine"):
        snap = lake.snapshot(name)
        cols = set(snap.data.schema.names)
        month = next((c for c in ("ingest_month", "month", "batch_month") if c in cols), None)
        month_sql = month if month else "'all'"
        # the code, never the free text: reasons can quote the rejected (personal) value
        reason = next((c for c in ("reason_code", "reason") if c in cols), "'unknown'")
        df = lake.query(
            f"select {month_sql} as month, {reason} as reason, count(*) as row_count "
            "from q group by 1, 2",
            q=name,
        )
        df.insert(0, "source", name.split(".", 1)[1])
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["source", "month", "reason", "row_count"])
    return pd.concat(frames, ignore_index=True).sort_values(["source", "month", "reason"])


def expectation_results(lake: Lake) -> pd.DataFrame:
    """The latest result of each expectation of each suite, failures first.

    The observed values are left out: a failed expectation's sample can hold personal data.
    """
    return lake.query(
        """
        select suite_name, expectation, kwargs, critical, success, run_at from (
            select *, row_number() over (partition by suite_name, expectation, kwargs
                                         order by run_at desc) as rn
            from d)
        where rn = 1 order by success, suite_name, expectation
        """,
        d="_ops.dq_results",
    )


def er_metrics(lake: Lake) -> pd.DataFrame:
    return lake.query("select * from e order by month", e="silver.er_metrics")


def freshness(lake: Lake) -> pd.DataFrame:
    """Every table's latest version and commit time, stalest first."""
    rows = []
    for layer in ("bronze", "silver", "gold", "_ops"):
        for name in lake.tables(layer):
            snap = lake.snapshot(name)
            rows.append({"table": name, "version": snap.version, "committed_at": snap.committed_at})
    df = pd.DataFrame(rows, columns=["table", "version", "committed_at"])
    return df.sort_values(["committed_at", "table"], na_position="first")
