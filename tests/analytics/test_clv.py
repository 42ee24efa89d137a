"""Predictive CLV (``cardlake.analytics.clv``) on hand-made card purchases whose answers are
known: the RFM summary and holdout spend to the day and cent, the metrics' arithmetic on paper,
the fitted model's orderings (frequent buyers buy more, a lapsed buyer is less likely alive,
dearer buyers spend more), and one whole run: the naive estimate's holdout error computed by
hand, the table and the MLflow run it leaves."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import mlflow
import pandas as pd
import pytest
from chispa import assert_df_equality
from mlflow.tracking import MlflowClient

from cardlake.analytics import clv
from cardlake.ml import tracking
from cardlake.ml.settings import ClvSettings, TrackingSettings
from tests.analytics import figures

FACT_SCHEMA = (
    "customer_key string, ts timestamp, amount_usd double, instrument_type string, "
    "state string, direction string, month string"
)


def _tx(
    customer: str | None,
    day: dt.date,
    amount: float,
    *,
    instrument: str = "card",
    state: str = "completed",
    direction: str = "debit",
) -> tuple:
    ts = dt.datetime.combine(day, dt.time(12, 0))
    return (customer, ts, amount, instrument, state, direction, day.strftime("%Y-%m"))


def _every(
    customer: str, start: dt.date, end: dt.date, step_days: int, amount: float
) -> list[tuple]:
    rows, day = [], start
    while day <= end:
        rows.append(_tx(customer, day, amount))
        day += dt.timedelta(days=step_days)
    return rows


def test_summary_counts_repeat_purchase_days_of_completed_card_debits(spark):
    d = dt.date
    rows = [
        _tx("c1", d(2024, 1, 5), 10.0),
        _tx("c1", d(2024, 1, 5), 5.0),  # one day worth 15
        _tx("c1", d(2024, 1, 20), 30.0),
        _tx("c1", d(2024, 2, 10), 50.0),
        _tx("c1", d(2024, 2, 12), 900.0, state="failed"),
        _tx("c1", d(2024, 2, 13), 900.0, direction="credit"),
        _tx("c1", d(2024, 2, 14), 900.0, instrument="account"),
        _tx("c1", d(2024, 3, 1), 70.0),  # after the observation end
        _tx("c2", d(2024, 2, 29), 25.0),  # one purchase day: no repeat
        _tx(None, d(2024, 1, 9), 40.0),
    ]
    days = clv.card_purchase_days(spark.createDataFrame(rows, FACT_SCHEMA))
    summary = clv.rfm_summary(days, through_month="2024-02")
    expected = spark.createDataFrame(
        # c1: days Jan 5, Jan 20, Feb 10: 2 repeats, Jan 5 -> Feb 10 = 36 days, Jan 5 -> Feb 29
        # (2024 is a leap year) = 55 days, repeat days worth (30 + 50) / 2.
        [("c1", 2.0, 36.0, 55.0, 40.0), ("c2", 0.0, 0.0, 0.0, 0.0)],
        "customer_key string, frequency double, recency double, T double, monetary_value double",
    )
    assert_df_equality(summary, expected, ignore_row_order=True, ignore_nullable=True)
    spend = clv.spend_between(days, first_month="2024-02", last_month="2024-03")
    assert_df_equality(
        spend,
        spark.createDataFrame(
            [("c1", 120.0), ("c2", 25.0)], "customer_key string, value_usd double"
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_validation_metrics_on_paper():
    frame = pd.DataFrame(
        {
            "customer_key": ["a", "b", "c"],
            "actual": [10.0, 0.0, 30.0],
            "predicted": [12.0, 1.0, 20.0],
            "naive": [0.0, 5.0, 30.0],
        }
    )
    metrics = clv.validation_metrics(frame)
    assert metrics["model_mae_usd"] == pytest.approx(13 / 3)  # |2| + |1| + |-10|
    assert metrics["naive_mae_usd"] == pytest.approx(5.0)  # |-10| + |5| + 0
    assert metrics["model_total_error_pct"] == pytest.approx(-17.5)  # 33 vs 40
    assert metrics["naive_total_error_pct"] == pytest.approx(-12.5)  # 35 vs 40
    assert metrics["holdout_customers"] == 3.0


def test_validation_frame_counts_missing_spend_as_zero():
    summary = pd.DataFrame({"customer_key": ["a", "b"]})
    predicted = pd.DataFrame({"customer_key": ["a", "b"], "expected_value_usd": [1.0, 2.0]})
    frame = clv.validation_frame(
        summary,
        predicted,
        actual=pd.DataFrame({"customer_key": ["a", "z"], "value_usd": [7.0, 99.0]}),
        naive=pd.DataFrame({"customer_key": ["b"], "value_usd": [3.0]}),
    )
    assert frame.sort_values("customer_key").to_dict("records") == [
        {"customer_key": "a", "predicted": 1.0, "actual": 7.0, "naive": 0.0},
        {"customer_key": "b", "predicted": 2.0, "actual": 0.0, "naive": 3.0},
    ]


@pytest.fixture(scope="module")
def cadence_outlook(spark) -> pd.DataFrame:
    """A year of weekly ($20s), monthly ($100s) and lapsed (weekly until March) buyers, and
    some one-off buyers; the model fitted on it and its outlook over 6 months."""
    d = dt.date
    end = d(2024, 12, 31)
    rows: list[tuple] = []
    for i in range(8):
        start = d(2024, 1, 1) + dt.timedelta(days=i)
        rows += _every(f"weekly-{i}", start, end, 7, 20.0 + i)
        rows += _every(f"monthly-{i}", start, end, 30, 100.0 + 5 * i)
        rows += _every(f"lapsed-{i}", start, d(2024, 3, 31), 7, 20.0 + i)
    for i in range(4):
        rows.append(_tx(f"once-{i}", d(2024, 6, 1) + dt.timedelta(days=20 * i), 50.0))
    days = clv.card_purchase_days(spark.createDataFrame(rows, FACT_SCHEMA))
    summary = clv.rfm_summary(days, through_month="2024-12").toPandas()
    fitted = clv.fit(summary, seed=7, fit_customers=1000)
    outlook = clv.predict(fitted, summary, months=6, margin_rate=0.02, monthly_discount=0.01)
    return outlook.assign(group=outlook["customer_key"].str.split("-").str[0])


@pytest.mark.slow  # a MAP fit: seconds, plus PyTensor's compile on a cold cache
def test_frequent_buyers_are_expected_to_buy_more(cadence_outlook):
    by = cadence_outlook.groupby("group")["expected_purchases"]
    assert by.min()["weekly"] > by.max()["monthly"]
    # About one purchase a week keeps going: 6 months hold ~26 weeks.
    assert 15 < cadence_outlook.query("group == 'weekly'")["expected_purchases"].mean() < 30


@pytest.mark.slow  # a MAP fit: seconds, plus PyTensor's compile on a cold cache
def test_a_buyer_who_stopped_long_ago_is_less_likely_alive(cadence_outlook):
    alive = cadence_outlook.groupby("group")["prob_alive"]
    assert alive.max()["lapsed"] < 0.2
    assert alive.min()["weekly"] > 0.8
    assert alive.max()["lapsed"] < alive.min()["monthly"]


@pytest.mark.slow  # a MAP fit: seconds, plus PyTensor's compile on a cold cache
def test_dearer_buyers_are_expected_to_spend_more_per_purchase(cadence_outlook):
    value = cadence_outlook.groupby("group")["expected_avg_value_usd"]
    assert value.min()["monthly"] > value.max()["weekly"]
    # Repeat purchases of $100-$135 and $20-$27: the estimates shrink towards the mean, but
    # stay within the groups' ranges give or take the shrinkage.
    assert 90 < value.mean()["monthly"] < 130
    assert 15 < value.mean()["weekly"] < 35
    # The lifetime value is the discounted spend times the margin: below 2% of the spend.
    row = cadence_outlook.iloc[0]
    assert 0 < row["clv_usd"] < 0.02 * row["expected_value_usd"]


@pytest.fixture
def tracker(tmp_path) -> Iterator[tracking.Tracker]:
    previous = mlflow.get_tracking_uri()
    yield tracking.Tracker.configure(str(tmp_path / "lake"), TrackingSettings())
    mlflow.set_tracking_uri(previous)


@pytest.mark.slow  # a MAP fit: seconds, plus PyTensor's compile on a cold cache
def test_run_validates_against_a_hand_made_holdout_and_writes_the_table(spark, rs_tables, tracker):
    d = dt.date
    rows: list[tuple] = []
    months = range(1, 9)  # 2024-01..2024-08; a 2-month holdout: fit to June, score Jul-Aug
    steady = [40.0 + 10 * i for i in range(6)]
    for i, amount in enumerate(steady):  # two purchases a month, every month
        rows += [_tx(f"steady-{i}", d(2024, m, day), amount) for m in months for day in (10, 20)]
    for i in range(3):  # the same until June, then nothing
        rows += [
            _tx(f"churner-{i}", d(2024, m, day), 50.0) for m in range(1, 7) for day in (10, 20)
        ]
    for i in range(2):  # January and February only
        rows += [_tx(f"lapsed-{i}", d(2024, m, 5), 30.0) for m in (1, 2)]
    rows += [
        _tx("newcomer", d(2024, 7, 15), 999.0),  # not a customer at the cut-off
        _tx("steady-0", d(2024, 7, 11), 5000.0, state="failed"),
        _tx("steady-0", d(2024, 7, 12), 5000.0, instrument="account"),
    ]
    rs_tables.overwrite(
        clv.FACT_TABLE, spark.createDataFrame(rows, FACT_SCHEMA), partition_by=["month"]
    )

    figures = clv.run_clv(
        rs_tables,
        month=None,
        settings=ClvSettings(holdout_months=2, horizon_months=12),
        seed=7,
        margin_rate=0.02,
        monthly_discount=0.01,
        tracker=tracker,
    )

    # On paper: 11 customers at the cut-off; the naive estimate (May-June spend) is right for
    # the steady and lapsed ones and 200 too high for each churner; the steady ones spend
    # 4 x (40 + ... + 90) = 1560 in July-August.
    assert figures["holdout_customers"] == 11
    assert figures["holdout_actual_total_usd"] == pytest.approx(1560.0)
    assert figures["naive_mae_usd"] == pytest.approx(600 / 11)
    assert figures["naive_total_error_pct"] == pytest.approx(100 * 600 / 1560)
    assert figures["model_mae_usd"] >= 0

    table = rs_tables.read(clv.OUTPUT_TABLE).toPandas().set_index("customer_key")
    assert len(table) == 12 and set(table["month"]) == {"2024-08"}
    assert table.loc["churner-0", "prob_alive"] < table.loc["steady-0", "prob_alive"]
    assert table.loc["steady-5", "clv_usd"] > table.loc["steady-0", "clv_usd"]
    run_id = table["model_run_id"].iloc[0]
    run = MlflowClient().get_run(run_id)
    assert mlflow.get_experiment(run.info.experiment_id).name == "cardlake-clv"
    assert run.data.metrics["naive_mae_usd"] == pytest.approx(600 / 11)
    assert run.data.params["cutoff_month"] == "2024-06"
    artifacts = {a.path for a in MlflowClient().list_artifacts(run_id, "plots")}
    assert "plots/holdout_deciles.png" in artifacts


@pytest.mark.slow
def test_the_model_beats_the_naive_estimate_on_the_built_lake(spark, built_lake):
    """The pipeline's own run (no refit here): its holdout figures, printed and asserted."""
    metrics = figures.clv_holdout(built_lake.cfg, built_lake.tables(spark))
    assert metrics["holdout_customers"] > 200
    assert metrics["model_mae_usd"] < metrics["naive_mae_usd"]
    assert abs(metrics["model_total_error_pct"]) < 10
