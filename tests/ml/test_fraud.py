"""Fraud features look only backwards in time; reason codes; the feedback-delay split."""

from __future__ import annotations

from datetime import datetime

import pytest

from cardlake.errors import JobFailed
from cardlake.ml.fraud import reasons_column, split_bounds, with_transaction_features
from cardlake.ml.fraud_features import learn_small_amount
from cardlake.ml.settings import load_ml_settings
from tests.ml.fakes import _tx, transactions_df


def test_history_counts_only_earlier_transactions(spark):
    t0 = datetime(2024, 3, 1, 10, 0)
    rows = [
        _tx(1, 7, t0, 3.0, "ONLINE", "US", False, None, True),
        _tx(2, 7, t0.replace(minute=20), 2.0, "ONLINE", "US", False, None, True),
        _tx(3, 7, t0.replace(minute=40), 500.0, "ONLINE", "US", False, None, True),
        _tx(4, 7, t0.replace(hour=12), 20.0, "POS", "GB", False, None, False),
    ]
    got = {
        r["transaction_id"]: r
        for r in with_transaction_features(
            transactions_df(spark, rows), hours=[1, 24], small_amount_usd=5.0
        ).collect()
    }
    first, third, fourth = got["TX000000000001"], got["TX000000000003"], got["TX000000000004"]
    assert first["tx_count_1h"] == 0 and first["small_count_1h"] == 0
    assert third["tx_count_1h"] == 2 and third["small_count_1h"] == 2
    assert fourth["tx_count_1h"] == 0 and fourth["tx_count_24h"] == 3
    assert first["is_new_device"] == 0  # the customer's very first transaction
    assert third["amount_ratio_30d"] == pytest.approx(500 / 2.5)


def _amounts(spark, legit, fraud):
    rows = [(a, 0) for a in legit] + [(a, 1) for a in fraud]
    return spark.createDataFrame(rows, "amount_usd double, label int")


@pytest.mark.parametrize(
    ("probes", "small_legit", "low", "high"),
    [
        # probes of 0.50-1.95 USD, every legitimate payment from 2.00 USD up: the cut lands at 2.00
        ([0.5 + i * 0.05 for i in range(30)], [], 1.95, 2.0),
        # probes of 5.00-8.77 USD under a ceiling the generator never uses, with legitimate small
        # payments below them: the cut lands above the probes, at the next legitimate amount (10.00)
        ([5.0 + i * 0.13 for i in range(30)], [1.0 + i * 0.2 for i in range(20)], 8.77, 10.0),
    ],
)
def test_small_amount_cut_off_is_learnt_above_the_probes(spark, probes, small_legit, low, high):
    start = 2.0 if not small_legit else 10.0
    legit = [start + i * 0.75 for i in range(400)] + small_legit
    cashouts = [800.0] * 10  # large fraud: not small, must not drag the cut up
    cut = learn_small_amount(_amounts(spark, legit, probes + cashouts), label="label")
    assert low < cut <= high


def test_small_amount_cut_off_needs_amounts(spark):
    with pytest.raises(JobFailed, match="small-amount cut-off"):
        learn_small_amount(_amounts(spark, [], []), label="label")


def test_merchant_reports_count_only_reports_filed_before(spark):
    merchant_of = {1: "M000001", 2: "M000001", 3: "M000001", 4: "M000002"}
    rows = [
        _tx(
            1, 1, datetime(2024, 3, 1, 9), 50.0, "POS", "GB", False, datetime(2024, 3, 5, 12), False
        ),
        _tx(2, 2, datetime(2024, 3, 5, 9), 50.0, "POS", "GB", False, None, False),
        _tx(3, 3, datetime(2024, 3, 6, 9), 50.0, "POS", "GB", False, None, False),
        # another merchant on the same day as transaction 3: M000001's report is not its own
        _tx(4, 4, datetime(2024, 3, 6, 10), 50.0, "POS", "GB", False, None, False),
    ]
    rows = [(*r[:10], merchant_of[i + 1], *r[11:]) for i, r in enumerate(rows)]
    got = {
        r["transaction_id"]: r["merchant_reports_30d"]
        for r in with_transaction_features(
            transactions_df(spark, rows), hours=[1, 24], small_amount_usd=5.0
        ).collect()
    }
    # the report is filed on 5 March: the same day's transaction cannot know it yet
    assert got == {
        "TX000000000001": 0.0,
        "TX000000000002": 0.0,
        "TX000000000003": 1.0,
        "TX000000000004": 0.0,
    }


def test_reasons_in_order_and_capped(spark):
    df = spark.createDataFrame(
        [(3.0, 0.0, 1.0, 1.0, 9.0, 4.0, 0.0, 1.0, 1.0), (0.0,) * 9],
        "small_count_1h double, merchant_reports_30d double, is_new_device double, "
        "ip_mismatch double, amount_ratio_30d double, tx_count_1h double, "
        "failed_count_24h double, is_night_f double, is_cross_border_f double",
    )
    got = [r[0] for r in df.select(reasons_column(3)).collect()]
    assert got == [
        [
            "burst of small payments in the last hour",
            "new device for this customer",
            "IP country differs from home country",
        ],
        [],
    ]


def test_split_leaves_the_feedback_delay_out():
    s = load_ml_settings("local").fraud
    months = [f"2024-{m:02d}" for m in range(1, 13)]
    b = split_bounds(months, s)
    assert b["test_start"] == datetime(2024, 11, 1)
    assert (b["test_start"] - b["train_end"]).days == s.feedback_delay_days
    assert b["valid_start"] < b["train_end"]
