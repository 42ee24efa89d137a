"""The analysts' tables on tiny hand-worked inputs: every expected figure is worked out by hand
in the comments, never by the code under test."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from cardlake.analytics.debt import kpi_debt_monthly
from cardlake.analytics.model_kpis import kpi_model_monthly
from cardlake.analytics.rfm import customer_rfm
from cardlake.analytics.segments import segment_monthly
from cardlake.analytics.service import kpi_service_monthly, kpi_service_workload
from cardlake.silver.schemas import DEBTS, INTERACTIONS

SEGMENTS = "customer_key string, month string, segment string"


def rows_by(df, *keys):
    return {tuple(r[k] for k in keys): r.asDict() for r in df.collect()}


def test_rfm_quintiles_and_groups(spark):
    features = spark.createDataFrame(
        [
            # recency, frequency, monetary
            ("c1", "2024-01", 1, 50, 5000.0),  # R5 F5 M5: champions
            ("c2", "2024-01", 40, 40, 4000.0),  # R3 F4 M4: loyal
            ("c3", "2024-01", 3, 2, 100.0),  # R4 F2 M2: potential loyalists
            ("c4", "2024-01", 60, 10, 900.0),  # R2 F3 M3: at risk
            ("c5", "2024-01", 365, 0, 0.0),  # nothing in 12 months
            # a month of two identical customers: ties share the lowest score
            ("c6", "2024-02", 10, 1, 10.0),
            ("c7", "2024-02", 10, 1, 10.0),
        ],
        "customer_key string, month string, recency_days int, frequency_12m long, "
        "monetary_12m_usd double",
    )
    got = rows_by(customer_rfm(features), "customer_key", "month")
    cells = {k[0]: (v["rfm_cell"], v["rfm_group"]) for k, v in got.items()}
    assert cells == {
        "c1": ("555", "champions"),
        "c2": ("344", "loyal"),
        "c3": ("422", "potential_loyalists"),
        "c4": ("233", "at_risk"),
        "c5": ("111", "no_purchases"),
        "c6": ("111", "hibernating"),
        "c7": ("111", "hibernating"),
    }


INTERACTION_ROWS = [
    # id, customer, channel, topic, opened, hours to resolution (None: open), month
    ("i0", "c2", "phone", "app_login", dt.datetime(2023, 12, 30, 12), 1.0, "2023-12"),
    ("i1", "c1", "phone", "fees_complaint", dt.datetime(2024, 1, 1, 10), 2.0, "2024-01"),
    ("i5", "c2", "email", "app_login", dt.datetime(2024, 1, 2, 9), 1.0, "2024-01"),
    ("i2", "c1", "chat", "app_login", dt.datetime(2024, 1, 5, 10), 4.0, "2024-01"),
    ("i3", "c2", "phone", "fees_complaint", dt.datetime(2024, 1, 10, 12), None, "2024-01"),
    ("i4", "c1", "phone", "card_blocked", dt.datetime(2024, 1, 20, 10), 6.0, "2024-01"),
]


@pytest.fixture(scope="module")
def interactions(spark):
    names = [f.name for f in INTERACTIONS.fields]
    rows = []
    for iid, key, channel, topic, opened, hours, month in INTERACTION_ROWS:
        resolved = None if hours is None else opened + dt.timedelta(hours=hours)
        row = {
            "interaction_id": iid,
            "customer_key": key,
            "channel": channel,
            "type": topic,
            "opened_at": opened,
            "resolved_at": resolved,
            "resolution_hours": hours,
            "note": "text",
            "month": month,
        }
        rows.append(tuple(row[n] for n in names))
    return spark.createDataFrame(rows, INTERACTIONS)


def test_service_kpis_by_channel_and_topic(interactions):
    got = rows_by(
        kpi_service_monthly(interactions, months=["2024-01"]), "month", "channel", "topic"
    )
    assert {k[0] for k in got} == {"2024-01"}  # December only feeds the repeat check
    every = got[("2024-01", "all", "all")]
    # 5 contacts by 2 customers; resolved hours 1, 2, 4, 6: median 3, p90 4 + 0.7 * 2 = 5.4;
    # repeats: i2 (4 days after i1) and i5 (3 days after December's i0); complaints i1, i3
    assert (every["contacts"], every["customers"], every["contacts_per_customer"]) == (5, 2, 2.5)
    assert (every["resolution_hours_median"], every["resolution_hours_p90"]) == pytest.approx(
        (3.0, 5.4)
    )
    assert (
        every["resolved_share"],
        every["repeat_contacts_7d"],
        every["repeat_rate_7d"],
        every["complaints"],
        every["complaint_rate"],
    ) == pytest.approx((0.8, 2, 0.4, 2, 0.4))
    phone = got[("2024-01", "phone", "all")]  # i1, i3, i4: hours 2 and 6
    assert (phone["contacts"], phone["customers"], phone["contacts_per_customer"]) == (3, 2, 1.5)
    assert (phone["resolution_hours_median"], phone["resolution_hours_p90"]) == pytest.approx(
        (4.0, 5.6)
    )
    assert (phone["repeat_contacts_7d"], phone["complaint_rate"]) == (0, pytest.approx(2 / 3))
    fees = got[("2024-01", "phone", "fees_complaint")]
    assert (fees["contacts"], fees["resolved_share"], fees["complaint_rate"]) == (2, 0.5, 1.0)
    assert got[("2024-01", "all", "app_login")]["repeat_contacts_7d"] == 2


def test_workload_by_weekday_and_hour(interactions):
    got = rows_by(kpi_service_workload(interactions), "month", "weekday", "hour")
    # 2024-01-01 is a Monday (weekday 2), one of January 2024's five Mondays
    monday = got[("2024-01", 2, 10)]
    assert (monday["weekday_name"], monday["contacts"], monday["contacts_per_day"]) == (
        "Mon",
        1,
        pytest.approx(0.2),
    )
    friday = got[("2024-01", 6, 10)]  # 2024-01-05, one of four Fridays
    assert (friday["weekday_name"], friday["contacts_per_day"]) == ("Fri", pytest.approx(0.25))
    assert sum(r["contacts"] for r in got.values()) == len(INTERACTION_ROWS)


def test_debt_portfolio(spark):
    names = [f.name for f in DEBTS.fields]

    def debt(did, key, kind, principal, outstanding, status, opened):
        row = {
            "debt_id": did,
            "customer_key": key,
            "type": kind,
            "principal": principal,
            "outstanding": outstanding,
            "interest_rate": 0.1,
            "status": status,
            "opened": opened,
        }
        return tuple(row[n] for n in names)

    debts = spark.createDataFrame(
        [
            debt("d1", "c1", "credit_card", 2000.0, 1000.0, "current", dt.date(2023, 5, 1)),
            debt("d2", "c1", "mortgage", 20000.0, 10000.0, "late", dt.date(2024, 2, 15)),
            debt("d3", "c2", "personal_loan", 500.0, 500.0, "default", dt.date(2020, 1, 1)),
            debt("d4", None, "car_loan", 1.0, 1.0, "current", dt.date(2020, 1, 1)),
        ],
        DEBTS,
    )
    features = spark.createDataFrame(
        [("c1", "2024-01", 30), ("c1", "2024-02", 30), ("c2", "2024-02", 70)],
        "customer_key string, month string, age int",
    )
    customers = spark.createDataFrame(
        [("c1", "40-70k"), ("c2", None)], "customer_key string, income_bracket string"
    )
    segments = spark.createDataFrame(
        [("c1", "2024-02", "cash_heavy")], "customer_key string, month string, segment string"
    )
    got = rows_by(
        kpi_debt_monthly(debts, features_df=features, customers_df=customers, segments_df=segments),
        "month",
        "breakdown",
        "value",
    )
    jan = got[("2024-01", "all", "all")]  # d2 opens in February
    assert (jan["debts"], jan["debtors"], jan["outstanding_usd"]) == (1, 1, 1000.0)
    assert jan["debt_to_income_mean"] == pytest.approx(1000 / 55000)
    feb = got[("2024-02", "all", "all")]
    assert (feb["debts"], feb["debtors"], feb["outstanding_usd"], feb["principal_usd"]) == (
        3,
        2,
        11500.0,
        22500.0,
    )
    assert feb["outstanding_median"] == 1000.0
    # c1: 11000 / 55000; c2 has no income bracket, so no ratio
    assert feb["debt_to_income_mean"] == pytest.approx(0.2)
    assert feb["delinquency_rate"] == pytest.approx(2 / 3)
    assert feb["delinquent_outstanding_share"] == pytest.approx(10500 / 11500)
    assert got[("2024-02", "age_band", "25-34")]["debts"] == 2
    assert got[("2024-02", "age_band", "65+")]["delinquency_rate"] == 1.0
    assert got[("2024-02", "segment", "cash_heavy")]["debts"] == 2
    assert got[("2024-02", "segment", "unsegmented")]["debts"] == 1
    assert got[("2024-02", "type", "mortgage")]["delinquency_rate"] == 1.0


def test_model_kpis_after_the_models(spark):
    tx = spark.createDataFrame(
        [
            ("t1", "2024-01", True),
            ("t2", "2024-01", True),
            ("t3", "2024-01", False),
            ("t4", "2024-01", False),
            ("t5", "2024-02", False),
        ],
        "transaction_id string, month string, is_fraud_reported boolean",
    )
    alerts = spark.createDataFrame(
        [("t1", "c1", 50.0, "2024-01"), ("t3", "c2", 20.0, "2024-01")],
        "transaction_id string, customer_key string, amount_usd double, month string",
    )
    risk = spark.createDataFrame(
        [("c1", "2024-02", "High"), ("c2", "2024-02", "Low"), ("c3", "2024-02", "Low")],
        "customer_key string, month string, tier string",
    )
    got = rows_by(kpi_model_monthly(tx, fraud_alerts_df=alerts, customer_risk_df=risk), "month")
    jan = got[("2024-01",)]
    # 2 alerts, one of them reported (precision 1/2); 2 reported, one alerted (recall 1/2)
    assert (
        jan["fraud_scored"],
        jan["fraud_alert_count"],
        jan["alerts_reported_fraud"],
        jan["alert_precision"],
        jan["alert_recall"],
        jan["customers_alerted"],
        jan["alert_value_usd"],
    ) == (True, 2, 1, 0.5, 0.5, 2, 70.0)
    feb = got[("2024-02",)]  # not scored by the fraud model: unknown, not zero
    assert (feb["fraud_scored"], feb["fraud_alert_count"], feb["alert_precision"]) == (
        False,
        None,
        None,
    )
    assert (
        feb["risk_high_customers"],
        feb["risk_medium_customers"],
        feb["risk_low_customers"],
    ) == (1, 0, 2)


def test_segment_sizes_profiles_and_migration(spark):
    segments = spark.createDataFrame(
        [
            ("a", "2024-01", "cash_heavy"),
            ("b", "2024-01", "cash_heavy"),
            ("c", "2024-01", "digital_spenders"),
            ("a", "2024-02", "cash_heavy"),
            ("b", "2024-02", "digital_spenders"),
            ("c", "2024-02", "digital_spenders"),
            ("d", "2024-02", "inactive"),
        ],
        "customer_key string, month string, segment string",
    )
    behaviour = spark.createDataFrame(
        [("a", "2024-01", 0.5), ("b", "2024-01", 0.7), ("c", "2024-01", None)],
        "customer_key string, month string, atm_share double",
    )
    got = rows_by(
        segment_monthly(segments, behaviour_df=behaviour, profile_columns=["atm_share"]),
        "month",
        "segment",
    )
    cash_jan = got[("2024-01", "cash_heavy")]
    assert (
        cash_jan["customers"],
        cash_jan["share"],
        cash_jan["new"],
        cash_jan["stayed"],
        cash_jan["avg_atm_share"],
    ) == (2, pytest.approx(2 / 3), 2, 0, pytest.approx(0.6))
    cash_feb = got[("2024-02", "cash_heavy")]  # a stayed, b left for digital
    assert (
        cash_feb["customers"],
        cash_feb["stayed"],
        cash_feb["moved_in"],
        cash_feb["moved_out"],
        cash_feb["from_segments"],
    ) == (1, 1, 0, 1, {"cash_heavy": 1})
    digital_feb = got[("2024-02", "digital_spenders")]
    assert (
        digital_feb["customers"],
        digital_feb["share"],
        digital_feb["stayed"],
        digital_feb["moved_in"],
        digital_feb["from_segments"],
    ) == (2, 0.5, 1, 1, {"cash_heavy": 1, "digital_spenders": 1})
    assert got[("2024-02", "inactive")]["new"] == 1
    assert got[("2024-02", "digital_spenders")]["avg_atm_share"] is None


def test_customer_360_one_row_per_current_customer(spark, interactions):
    from cardlake.analytics.customer360 import customer_360
    from cardlake.silver.schemas import CUSTOMERS

    features = spark.createDataFrame(
        # c9 closed in December: on the books in 2023-12 only, so not current in January
        [("c1", "2024-01", 5, 900.0), ("c2", "2024-01", 1, 20.0), ("c9", "2023-12", 3, 1.0)],
        "customer_key string, month string, tenure_months int, clv_estimate_usd double",
    )
    for col in (
        "age",
        "credit_score",
        "tx_count",
        "spend_usd",
        "recency_days",
        "frequency_12m",
        "monetary_12m_usd",
        "eng_count_3m",
        "eng_days_3m",
    ):
        features = features.withColumn(col, F.lit(None).cast("double"))
    names = [f.name for f in CUSTOMERS.fields]
    customers = spark.createDataFrame(
        [
            tuple(
                {"customer_key": k, "first_name": n, "plan_type": "standard"}.get(c) for c in names
            )
            for k, n in (("c1", "Ann"), ("c2", None), ("c9", "Zed"))
        ],
        CUSTOMERS,
    )
    segments = spark.createDataFrame([("c1", "2024-01", "cash_heavy")], SEGMENTS)
    rfm = spark.createDataFrame(
        [("c1", "2024-01", "555", "champions")],
        "customer_key string, month string, rfm_cell string, rfm_group string",
    )
    engagement = spark.createDataFrame(
        [("c1", "2023-12", 0.9), ("c1", "2024-01", 0.2), ("c1", "2024-02", 0.7)],
        "customer_key string, month string, score double",
    )  # February is after the month
    risk = spark.createDataFrame(
        [("c2", "2023-12", 610.0, "High", ["debt"])],
        "customer_key string, month string, risk_score double, tier string, reasons array<string>",
    )
    alerts = spark.createDataFrame(
        [
            ("c1", dt.datetime(2024, 1, 3), "2024-01"),
            ("c1", dt.datetime(2024, 1, 9), "2024-01"),
            ("c2", dt.datetime(2023, 12, 9), "2023-12"),
        ],
        "customer_key string, ts timestamp, month string",
    )
    clv = spark.createDataFrame([("c2", 42.0)], "customer_key string, clv_usd double")
    got = rows_by(
        customer_360(
            features,
            customers_df=customers,
            segments_df=segments,
            rfm_df=rfm,
            engagement_df=engagement,
            risk_df=risk,
            alerts_df=alerts,
            interactions_df=interactions,
            clv_df=clv,
        ),
        "customer_key",
    )
    assert set(got) == {("c1",), ("c2",)}
    c1, c2 = got[("c1",)], got[("c2",)]
    assert (c1["as_of_month"], c1["first_name"], c1["segment"], c1["rfm_group"]) == (
        "2024-01",
        "Ann",
        "cash_heavy",
        "champions",
    )
    assert (c1["clv_usd"], c1["disengagement_score"], c1["fraud_alerts_month"]) == (900.0, 0.2, 2)
    assert c1["last_fraud_alert_at"] == dt.datetime(2024, 1, 9)
    # c1's last contact is i4 (20 January, phone, card_blocked); 3 contacts in January
    assert (
        c1["last_contact_at"],
        c1["last_contact_channel"],
        c1["last_contact_topic"],
        c1["contacts_3m"],
    ) == (dt.datetime(2024, 1, 20, 10), "phone", "card_blocked", 3)
    assert (c2["segment"], c2["rfm_group"], c2["clv_usd"]) == ("unsegmented", None, 42.0)
    assert (c2["risk_tier"], c2["risk_reasons"], c2["fraud_alerts_month"]) == ("High", ["debt"], 0)
    # i0 (December) and i5, i3 (January): the last is i3 on 10 January
    assert (c2["last_contact_topic"], c2["contacts_3m"]) == ("fees_complaint", 3)
