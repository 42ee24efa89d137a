"""The retention experiment: seeded stratified 60/40 split and the balance tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cardlake.ml.experiment import CONTROL, TEST, balance_report, top_share, with_assignment


@pytest.fixture
def top_df(spark):
    rows = [(f"c{i:04d}", 1.0 - i / 1000, ["standard", "premium"][i % 2 == 0 and i % 3 == 0])
            for i in range(1000)]
    return spark.createDataFrame(rows, "customer_key string, score double, plan_type string")


def test_top_share_keeps_the_highest_scores(top_df):
    top = top_share(top_df, share=0.1)
    assert top.count() == 100
    assert top.agg({"score": "min"}).first()[0] == pytest.approx(1.0 - 99 / 1000)


def test_split_is_60_40_within_every_stratum_and_seeded(top_df):
    out = with_assignment(top_df, strata=["plan_type"], score_bins=2, test_share=0.6, seed=5)
    counts = out.groupBy("stratum", "group").count().toPandas().pivot(
        index="stratum", columns="group", values="count").fillna(0)
    assert len(counts) == 4  # 2 plans x 2 score bands
    for _, row in counts.iterrows():
        n = row[TEST] + row[CONTROL]
        assert row[TEST] == round(0.6 * n)
    first = {r["customer_key"]: r["group"] for r in out.collect()}
    again = with_assignment(top_df, strata=["plan_type"], score_bins=2, test_share=0.6, seed=5)
    assert {r["customer_key"]: r["group"] for r in again.collect()} == first
    other = with_assignment(top_df, strata=["plan_type"], score_bins=2, test_share=0.6, seed=6)
    assert {r["customer_key"]: r["group"] for r in other.collect()} != first


def _groups(shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(42)
    n_test, n_control = 600, 400
    return pd.DataFrame({
        "group": [TEST] * n_test + [CONTROL] * n_control,
        "spend": np.concatenate([rng.lognormal(3 + shift, 1, n_test),
                                 rng.lognormal(3, 1, n_control)]),
        "age": np.concatenate([rng.normal(40 + 10 * shift, 10, n_test),
                               rng.normal(40, 10, n_control)]),
        "plan": np.concatenate([rng.choice(["a", "b"], n_test, p=[0.5 + shift / 2,
                                                                  0.5 - shift / 2]),
                                rng.choice(["a", "b"], n_control)]),
    })


def test_identical_groups_pass_every_test():
    report = balance_report(_groups(0.0), numeric=["spend", "age"], categorical=["plan"],
                            alpha=0.05, smd_limit=0.1).set_index("characteristic")
    assert report.loc["spend", "test"] == "mann_whitney"  # lognormal: skewed
    assert report.loc["age", "test"] == "welch_t"
    assert report.loc["plan", "test"] == "chi_square"
    assert (report["p_value"] > 0.05).all()
    assert report["balanced"].all()


def test_different_groups_are_flagged():
    report = balance_report(_groups(0.6), numeric=["spend", "age"], categorical=["plan"],
                            alpha=0.05, smd_limit=0.1).set_index("characteristic")
    assert (report["p_value"] < 0.001).all()
    assert not report["balanced"].any()
    assert report.loc["age", "smd"] > 0.4
