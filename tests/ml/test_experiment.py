"""The retention experiment: seeded stratified 60/40 split and the balance tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cardlake.ml.experiment import (
    CONTROL,
    TEST,
    assign_groups,
    balance_report,
    rerandomise,
    top_share,
)
from cardlake.ml.settings import ExperimentSettings


@pytest.fixture
def top_df(spark):
    rows = [
        (f"c{i:04d}", 1.0 - i / 1000, ["standard", "premium"][i % 2 == 0 and i % 3 == 0])
        for i in range(1000)
    ]
    return spark.createDataFrame(rows, "customer_key string, score double, plan_type string")


def test_top_share_keeps_the_highest_scores(top_df):
    top = top_share(top_df, share=0.1)
    assert top.count() == 100
    assert top.agg({"score": "min"}).first()[0] == pytest.approx(1.0 - 99 / 1000)


def test_split_is_60_40_within_every_stratum_and_seeded(top_df):
    pdf = top_df.toPandas()
    out = assign_groups(pdf, strata=["plan_type"], score_bins=2, test_share=0.6, seed=5)
    counts = out.groupby(["stratum", "group"]).size().unstack(fill_value=0)
    # Band 1 is i = 0..499 (highest scores), band 2 is 500..999; "premium" is i divisible by 6:
    # 84 in band 1 (test round(50.4) = 50) and 83 in band 2 (round(49.8) = 50); "standard" is
    # 416 (round(249.6) = 250) and 417 (round(250.2) = 250).
    assert counts.to_dict("index") == {
        "premium|band1": {CONTROL: 34, TEST: 50},
        "premium|band2": {CONTROL: 33, TEST: 50},
        "standard|band1": {CONTROL: 166, TEST: 250},
        "standard|band2": {CONTROL: 167, TEST: 250},
    }
    again = assign_groups(pdf, strata=["plan_type"], score_bins=2, test_share=0.6, seed=5)
    assert again.equals(out)
    other = assign_groups(pdf, strata=["plan_type"], score_bins=2, test_share=0.6, seed=5, draw=1)
    assert not other["group"].equals(out["group"])


def _small_top(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "customer_key": [f"c{i:03d}" for i in range(n)],
            "score": np.linspace(1.0, 0.5, n),
            "spend": rng.lognormal(3, 1, n),
            "age": rng.normal(40, 12, n),
            "plan": rng.choice(["a", "b"], n),
        }
    )


def test_rerandomisation_keeps_the_first_balanced_draw():
    pdf = _small_top()
    settings = ExperimentSettings(
        numeric=("spend", "age"),
        categorical=("plan",),
        strata=(),
        score_bins=1,
        test_share=0.5,
        smd_limit=0.1,
        draws=500,
    )
    groups, draw, report = rerandomise(pdf, settings=settings, seed=3)
    assert report["balanced"].all()
    assert (report["smd"].abs() <= 0.1).all()
    for earlier in range(draw):  # every earlier draw fails a check
        g = assign_groups(pdf, strata=(), score_bins=1, test_share=0.5, seed=3, draw=earlier)
        r = balance_report(
            pdf.assign(group=g["group"]),
            numeric=["spend", "age"],
            categorical=["plan"],
            alpha=0.05,
            smd_limit=0.1,
        )
        assert not r["balanced"].all()
    assert (groups["group"] == TEST).sum() == 30
    again = rerandomise(pdf, settings=settings, seed=3)
    assert again[1] == draw


def test_rerandomisation_without_a_balanced_draw_keeps_the_most_balanced():
    pdf = _small_top(12)
    settings = ExperimentSettings(
        numeric=("spend", "age"),
        categorical=("plan",),
        strata=(),
        score_bins=1,
        test_share=0.5,
        smd_limit=0.0001,
        draws=5,
        min_level_count=1,
    )  # 12 customers: no pooling
    _, draw, report = rerandomise(pdf, settings=settings, seed=3)
    worst = []
    for d in range(5):
        g = assign_groups(pdf, strata=(), score_bins=1, test_share=0.5, seed=3, draw=d)
        r = balance_report(
            pdf.assign(group=g["group"]),
            numeric=["spend", "age"],
            categorical=["plan"],
            alpha=0.05,
            smd_limit=0.1,
        )
        worst.append(r["smd"].abs().max())
    assert draw == int(np.argmin(worst))
    assert report["smd"].abs().max() == pytest.approx(min(worst))


def _groups(shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(42)
    n_test, n_control = 600, 400
    return pd.DataFrame(
        {
            "group": [TEST] * n_test + [CONTROL] * n_control,
            "spend": np.concatenate(
                [rng.lognormal(3 + shift, 1, n_test), rng.lognormal(3, 1, n_control)]
            ),
            "age": np.concatenate(
                [rng.normal(40 + 10 * shift, 10, n_test), rng.normal(40, 10, n_control)]
            ),
            "plan": np.concatenate(
                [
                    rng.choice(["a", "b"], n_test, p=[0.5 + shift / 2, 0.5 - shift / 2]),
                    rng.choice(["a", "b"], n_control),
                ]
            ),
        }
    )


def test_identical_groups_pass_every_test():
    report = balance_report(
        _groups(0.0), numeric=["spend", "age"], categorical=["plan"], alpha=0.05, smd_limit=0.1
    ).set_index("characteristic")
    assert report.loc["spend", "test"] == "mann_whitney"  # lognormal: skewed
    assert report.loc["age", "test"] == "welch_t"
    assert report.loc["plan", "test"] == "chi_square"
    assert (report["p_value"] > 0.05).all()
    assert report["balanced"].all()


def test_different_groups_are_flagged():
    report = balance_report(
        _groups(0.6), numeric=["spend", "age"], categorical=["plan"], alpha=0.05, smd_limit=0.1
    ).set_index("characteristic")
    assert (report["p_value"] < 0.001).all()
    assert not report["balanced"].any()
    assert report.loc["age", "smd"] > 0.4


def test_a_rare_level_is_pooled_and_a_lone_customer_does_not_block_balance():
    # 100 customers: 49 in "a", 48 in "b", and three countries of one customer each. A level of
    # one customer in a test group of 50 has SMD 0.02 / sqrt(0.02 * 0.98 / 2) = 0.202 whichever
    # draw is taken, so checked level by level no split can pass a 0.1 limit.
    pdf = _small_top(100).assign(country=["a"] * 49 + ["b"] * 48 + ["x", "y", "z"])
    strict = ExperimentSettings(
        numeric=(),
        categorical=("country",),
        strata=(),
        score_bins=1,
        test_share=0.5,
        smd_limit=0.1,
        draws=30,
        min_level_count=1,
    )
    _, _, report = rerandomise(pdf, settings=strict, seed=3)
    assert not report["balanced"].all()
    assert report["smd"].abs().max() >= 0.02 / np.sqrt(0.02 * 0.98 / 2) - 1e-9

    # Pooled (under 10 customers): x, y, z become one "other" level of 3, too small to weigh
    # in the SMD; a and b are checked, and a draw balancing them exists among the first 30.
    pooled = ExperimentSettings(
        numeric=(),
        categorical=("country",),
        strata=(),
        score_bins=1,
        test_share=0.5,
        smd_limit=0.1,
        draws=30,
        min_level_count=10,
    )
    groups, _, report = rerandomise(pdf, settings=pooled, seed=3)
    assert report["balanced"].all()
    split = pdf.assign(group=groups["group"])
    test_a = ((split["country"] == "a") & (split["group"] == TEST)).sum()
    test_b = ((split["country"] == "b") & (split["group"] == TEST)).sum()
    p1a, p2a = test_a / 50, (49 - test_a) / 50
    p1b, p2b = test_b / 50, (48 - test_b) / 50
    for p1, p2 in ((p1a, p2a), (p1b, p2b)):  # the SMD recomputed by hand from the counts
        assert abs(p1 - p2) / np.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2) <= 0.1
