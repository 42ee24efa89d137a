"""Best achievable rankings from the generator's truth files, worked by hand on a tiny truth."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from cardlake.ml import evaluate

MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04"]


def _write_truth(root: Path) -> None:
    probabilities = {
        "p1": [0.1, 0.2, 0.5, 0.0],
        "p2": [0.3, 0.3, 0.3, 0.3],
        "p3": [0.0, 0.0, 0.0, 0.0],
    }
    for i, month in enumerate(MONTHS):
        folder = root / "adverse_event_monthly" / f"month={month}"
        folder.mkdir(parents=True)
        pd.DataFrame(
            {
                "person_id": list(probabilities),
                "adverse_event_probability": [v[i] for v in probabilities.values()],
            }
        ).to_parquet(folder / "part-0.parquet")
    (root / "persons").mkdir()
    pd.DataFrame({"person_id": ["p1", "p2", "p3"], "churn_month": ["", "", "2024-03"]}).to_parquet(
        root / "persons" / "part-0.parquet"
    )
    (root / "source_keys").mkdir()
    pd.DataFrame({"key_value": ["k1", "k2", "k3"], "person_id": ["p1", "p2", "p3"]}).to_parquet(
        root / "source_keys" / "part-0.parquet"
    )


class _Crosswalk:
    """The one table the truth join reads from the lake."""

    def __init__(self, df):
        self.df = df

    def exists(self, name: str) -> bool:
        return name == "silver.crosswalk"

    def read(self, name: str):
        assert name == "silver.crosswalk"
        return self.df


def test_at_risk_oracle_combines_the_months_ahead_and_closures(spark, tmp_path):
    _write_truth(tmp_path)
    events = spark.read.parquet(str(tmp_path / "adverse_event_monthly"))
    persons = spark.read.parquet(str(tmp_path / "persons"))
    got = {
        (r["person_id"], r["month"]): r["best_probability"]
        for r in evaluate.at_risk_oracle(events, persons, horizon_months=2).collect()
    }
    assert got[("p1", "2024-01")] == pytest.approx(1 - 0.8 * 0.5)  # February and March
    assert got[("p1", "2024-02")] == pytest.approx(1 - 0.5 * 1.0)
    assert got[("p1", "2024-04")] == 0.0  # nothing ahead
    assert got[("p2", "2024-01")] == pytest.approx(1 - 0.7 * 0.7)
    assert got[("p3", "2024-01")] == 1.0  # closes in March, within two months
    assert got[("p3", "2024-02")] == 1.0
    assert got[("p3", "2024-03")] == 0.0  # the closure month itself looks past it


def test_risk_best_achievable_auc_from_the_truth_files(spark, tmp_path):
    _write_truth(tmp_path)
    crosswalk = spark.createDataFrame(
        [("c1", "k1", True), ("c2", "k2", True), ("c3", "k3", True)],
        "customer_key string, source_record_id string, is_current boolean",
    )
    scored = spark.createDataFrame(
        [
            ("c1", "2024-01", 1, 0.2),
            ("c1", "2024-02", 0, 0.9),
            ("c2", "2024-01", 0, 0.1),
            ("c3", "2024-01", 1, 0.5),
            ("c9", "2024-01", 1, 0.7),
        ],  # a customer no person maps to: left out of both AUCs
        "customer_key string, month string, label int, score double",
    )
    cfg = SimpleNamespace(paths=SimpleNamespace(truth_root=str(tmp_path)))
    got = evaluate.risk_against_truth(
        spark, cfg, tables=_Crosswalk(crosswalk), scored_df=scored, horizon_months=2
    )
    # truth: c1@01 0.6 (bad), c1@02 0.5 (good), c2@01 0.51 (good), c3@01 1.0 (bad): both bads
    # above both goods, AUC 1. Model: bads 0.2 and 0.5 against goods 0.9 and 0.1 win 2 of 4.
    assert got == {
        "truth_rows": 4.0,
        "auc": 0.5,
        "best_achievable_auc": 1.0,
        "auc_gap_to_best": 0.5,
    }


def test_adoption_oracle_looks_ahead_over_the_horizon(spark):
    use = spark.createDataFrame(
        [
            ("p1", "fx", "2024-01", 0.0),
            ("p1", "fx", "2024-02", 0.5),
            ("p1", "fx", "2024-03", 0.2),
            ("p1", "wallet", "2024-01", 0.9),
        ],
        "person_id string, product string, month string, use_probability double",
    )
    got = {
        (r["product"], r["month"]): r["best_probability"]
        for r in evaluate.adoption_oracle(use, horizon_months=2).collect()
    }
    assert got[("fx", "2024-01")] == pytest.approx(1 - 0.5 * 0.8)
    assert got[("fx", "2024-02")] == pytest.approx(0.2)
    assert got[("fx", "2024-03")] == 0.0
    assert got[("wallet", "2024-01")] == 0.0


def test_archetype_agreement_from_modal_segments(spark, tmp_path):
    for name, frame in {
        "source_keys": pd.DataFrame(
            {"key_value": ["k1", "k2", "k3", "k4"], "person_id": ["p1", "p2", "p3", "p4"]}
        ),
        "archetypes": pd.DataFrame(
            {
                "person_id": ["p1", "p2", "p3", "p4"],
                "archetype": [
                    "digital_spender",
                    "digital_spender",
                    "high_volatility",
                    "high_volatility",
                ],
            }
        ),
    }.items():
        (tmp_path / name).mkdir()
        frame.to_parquet(tmp_path / name / "part-0.parquet")
    crosswalk = spark.createDataFrame(
        [
            ("c1", "k1", True),
            ("c2", "k2", True),
            ("c3", "k3", True),
            ("c4", "k4", True),
            ("c9", "k1", False),
        ],  # no longer current: c9 maps to no person
        "customer_key string, source_record_id string, is_current boolean",
    )
    segments = spark.createDataFrame(
        [
            ("c1", "2024-01", 0, "digital_spenders"),
            ("c1", "2024-02", 0, "digital_spenders"),
            ("c1", "2024-03", 1, "cash_heavy"),  # c1's modal segment: digital_spenders
            ("c2", "2024-01", 0, "digital_spenders"),
            ("c3", "2024-01", 1, "cash_heavy"),
            ("c4", "2024-01", 1, "cash_heavy"),
            ("c4", "2024-02", None, "inactive"),
            ("c4", "2024-03", None, "inactive"),
            ("c9", "2024-01", 0, "digital_spenders"),
        ],
        "customer_key string, month string, cluster int, segment string",
    )
    cfg = SimpleNamespace(paths=SimpleNamespace(truth_root=str(tmp_path)))
    got = evaluate.archetype_agreement(
        spark, cfg, tables=_Crosswalk(crosswalk), segments_df=segments
    )
    # The segments split the four customers as their archetypes do (ARI 1), but cash_heavy is
    # not the high-volatility archetype's name: two of four are named after their archetype.
    assert got == {"archetype_ari": 1.0, "archetype_name_accuracy": 0.5, "archetype_customers": 4.0}
