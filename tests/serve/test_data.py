"""The dashboard's and report's figures on the tiny hand-made lake, whose answers are known."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from cardlake.serve import data
from cardlake.serve.lake import Lake, TableNotBuilt
from cardlake.serve.masking import GOVERNANCE_MASKS, mask_value
from cardlake.serve.report import fmt_change, kpi_rows, narrative


def test_risk_queue_is_high_then_medium_by_score(tiny_lake: Path) -> None:
    queue = data.risk_queue(Lake(str(tiny_lake)))
    assert list(queue["customer_key"]) == ["CK-C", "CK-A", "CK-E", "CK-B"]  # CK-D is Low
    assert list(queue["reasons"]) == [
        "fraud history; low credit score",
        "debt; inactivity",
        "failed transactions; debt",
        "spend spike",
    ]


def test_channel_figures(tiny_lake: Path) -> None:
    df = data.by_channel(Lake(str(tiny_lake)), "2025-01").set_index("channel")
    assert df.loc["online", "tx_count"] == 2
    assert df.loc["online", "value_usd"] == pytest.approx(150.0)
    assert df.loc["online", "success_rate"] == pytest.approx(0.5)
    assert df.loc["atm", "revenue_usd"] == pytest.approx(2.0)
    # a transaction without a state counts as not completed
    assert df.loc["pos", "success_rate"] == pytest.approx(0.5)


def test_missing_table_is_named(tiny_lake: Path) -> None:
    with pytest.raises(TableNotBuilt) as err:
        data.segment_sizes(Lake(str(tiny_lake)))
    assert err.value.name == "gold.customer_segments"
    assert data.built_by("gold.customer_segments") == "make train-segmentation"
    assert data.built_by("gold.kpi_plan_monthly") == "make gold"


def test_snapshot_follows_new_commits(tiny_lake: Path, tmp_path: Path) -> None:
    root = tmp_path / "lake"
    shutil.copytree(tiny_lake / "gold" / "customer_risk", root / "gold" / "customer_risk")
    lake = Lake(str(root))
    before = lake.snapshot("gold.customer_risk")
    assert before.version == 0
    extra = pa.table(
        {
            "customer_key": ["CK-F"],
            "month": ["2025-01"],
            "risk_score": pa.array([800], pa.int32()),
            "tier": ["High"],
            "reasons": pa.array([["debt"]], pa.list_(pa.string())),
            "at_risk_probability": [0.8],
            "model_version": ["1"],
        }
    )
    write_deltalake(str(root / "gold" / "customer_risk"), extra, mode="append")
    assert lake.snapshot("gold.customer_risk").version == 1
    assert data.risk_queue(lake)["customer_key"].iloc[0] == "CK-F"
    assert "gold.customer_risk v1" in lake.version_label("gold.customer_risk")


def test_search_by_key_name_and_email(tiny_lake: Path) -> None:
    lake = Lake(str(tiny_lake))
    assert list(data.search_customers(lake, "ck-b")["customer_key"]) == ["CK-B"]
    assert list(data.search_customers(lake, "de vries")["customer_key"]) == ["CK-B"]
    assert list(data.search_customers(lake, "chen.wei@")["customer_key"]) == ["CK-C"]
    assert data.search_customers(lake, "nobody").empty


def test_customer_360_masks_for_analysts(tiny_lake: Path) -> None:
    lake = Lake(str(tiny_lake))
    masked = dict((f, v) for f, v, _ in data.customer_360(lake, "CK-A", "analyst").record)
    assert masked["first_name"] == "A."
    assert masked["email"] == "a•••@example.com"
    assert masked["phone"] == "•••4567"
    assert masked["date_of_birth"] == "1983"
    assert masked["country"] == "IE"
    clear = data.customer_360(lake, "CK-A", "privileged")
    assert dict((f, v) for f, v, _ in clear.record)["email"] == "aoife.santos@example.com"
    assert clear.risk is not None and clear.risk["tier"] == "High"
    assert data.customer_360(lake, "CK-Z", "analyst") is None


def test_masking_rules() -> None:
    assert mask_value("last_name", "de Vries", "analyst") == "D. V."
    assert mask_value("email", "not-an-email", "analyst") == "•••"
    assert mask_value("date_of_birth", date(1990, 1, 2), "analyst") == "1990"
    assert mask_value("phone", None, "analyst") is None
    assert mask_value("amount_usd", 12.5, "analyst") == 12.5
    # conf/governance.yaml nullifies card tokens: shown as hidden, not as a blank (missing) cell
    assert mask_value("card_token", "tok_1", "analyst", table="gold.fraud_alerts_live") == "•••"
    assert GOVERNANCE_MASKS["nullify"](712.0) is None  # a number stays chartable
    with pytest.raises(ValueError, match="unknown dashboard role 'root'"):
        mask_value("email", "a@b.c", "root")


def test_report_kpis_against_previous_month_and_a_year_ago(tiny_lake: Path) -> None:
    rows = {r.key: r for r in kpi_rows(data.kpi_monthly(Lake(str(tiny_lake))), "2025-01")}
    tx = rows["tx_count"]  # 1000 + 10 i: i = 12 now, 11 the month before, 0 a year ago
    assert (tx.value, tx.previous, tx.year_ago) == (1120, 1110, 1000)
    assert fmt_change(tx.vs_previous) == "+0.9%"
    assert fmt_change(tx.vs_year_ago) == "+12.0%"
    sentences = narrative("2025-01", list(rows.values()), {"high_risk": 2, "medium_risk": 2})
    assert sentences[0] == (
        "In 2025-01 customers made 1,120 transactions worth $62,000.00, "
        "up 0.9% on the previous month."
    )
    assert "Revenue from fees and FX margin was $732.00 (+22.0% against a year ago)." in sentences
    assert "2 customers are in the High risk tier and 2 in Medium." in sentences


def test_segment_profile_words() -> None:
    overall = {c: 100.0 for c, _ in data.PROFILE_FEATURES}
    row = {c: 100.0 for c, _ in data.PROFILE_FEATURES} | {"online_rate": 130.0, "atm_rate": 70.0}
    assert data.describe_profile(row, overall) == "high online share, low cash (ATM) share"
    assert data.describe_profile(overall, overall) == "close to the average customer"
    far = row | {"spend_usd": 300.0, "tx_count": 10.0}  # the three furthest from the mean
    assert (
        data.describe_profile(far, overall) == "high monthly spend, low transactions, "
        "high online share"
    )


def test_profile_of_a_source(tiny_lake: Path) -> None:
    from cardlake.serve.profiling import profile

    df = profile(Lake(str(tiny_lake)), "bronze.crm_customers").set_index("column")
    assert df.loc["email", "complete_pct"] == pytest.approx(80.0)
    assert df.loc["crm_id", "complete_pct"] == pytest.approx(100.0)
    assert df.loc["amount", "iqr_outliers"] == 1  # 100 lies beyond Q3 + 1.5 IQR
    assert df.loc["amount", "max"] == "100.0"
    assert df.loc["first_name", "min"] == ""  # a name is never copied into a profile
    assert pd.isna(df.loc["email", "iqr_outliers"])


def test_experiment_balance_in_one_scan(tmp_path: Path) -> None:
    """Means, sample variances and SMDs worked by hand: CK5 has no features that month (its
    covariates are missing, its score counts); CK1's row of another month is not joined."""
    write_deltalake(
        str(tmp_path / "gold" / "experiment_assignment"),
        pa.Table.from_pylist(
            [
                {"experiment": "e1", "month": "2025-01", "customer_key": k, "group": g, "score": s}
                for k, g, s in [
                    ("CK1", "test", 0.2),
                    ("CK2", "test", 0.4),
                    ("CK3", "control", 0.1),
                    ("CK4", "control", 0.3),
                    ("CK5", "control", 0.2),
                ]
            ]
        ),
    )
    features = [
        ("CK1", "2025-01", 100.0, 5, 10),
        ("CK2", "2025-01", 300.0, 5, 20),
        ("CK3", "2025-01", 100.0, 5, 10),
        ("CK4", "2025-01", 100.0, 5, 20),
        ("CK1", "2024-12", 9999.0, 99, 99),
    ]
    write_deltalake(
        str(tmp_path / "gold" / "customer_monthly_features"),
        pa.Table.from_pylist(
            [
                {
                    "customer_key": k,
                    "month": m,
                    "spend_usd": s,
                    "tx_count": n,
                    "tenure_months": v,
                    "age": v,
                    "credit_score": v,
                }
                for k, m, s, n, v in features
            ]
        ),
    )
    df = data.experiment_balance(Lake(str(tmp_path)))
    expected = pd.DataFrame(
        {
            "covariate": ["score", "spend_usd", "tx_count", "tenure_months", "age", "credit_score"],
            # score: test 0.2, 0.4 (var 0.02); control 0.1, 0.3, 0.2 (var 0.01); pooled 0.015
            "test_mean": [0.3, 200.0, 5.0, 15.0, 15.0, 15.0],
            "control_mean": [0.2, 100.0, 5.0, 15.0, 15.0, 15.0],
            "smd": [0.1 / 0.015**0.5, 1.0, 0.0, 0.0, 0.0, 0.0],  # spend: 100 / sqrt(20000 / 2)
        }
    )
    pd.testing.assert_frame_equal(df, expected, check_exact=False, rtol=1e-9)


def test_profile_top_values_and_histogram(tmp_path: Path) -> None:
    """Fourteen rows worked by hand: a value is a top value when at least MIN_SHARED (5) rows
    share it; amounts 0..10 fall into ten bins of width 1, each holding what lies above the
    previous bound up to its own; a name repeated seven times is still never copied."""
    from cardlake.serve.profiling import profile, render

    amounts = [0.0, 1.0, 1.5, 2.0, 2.0, 3.0, 9.5] + [10.0] * 6 + [None]
    write_deltalake(
        str(tmp_path / "bronze" / "feed"),
        pa.table(
            {
                "crm_id": [f"C{i:02d}" for i in range(14)],  # few distinct values, each one row's
                "channel": ["pos"] * 6 + ["online"] * 5 + ["atm"] * 2 + [None],
                "amount": pa.array(amounts, pa.float64()),
                "first_name": ["Aoife"] * 7 + ["Bram"] * 7,
            }
        ),
    )
    lake = Lake(str(tmp_path))
    df = profile(lake, "bronze.feed").set_index("column")
    assert df.loc["channel", "top_values"] == [("pos", 6), ("online", 5)]  # atm: 2 rows
    assert df.loc["amount", "top_values"] == [("10.0", 6)]
    assert df.loc["crm_id", "top_values"] is None
    assert df.loc["first_name", "top_values"] is None
    assert df.loc["amount", "histogram"] == [
        (1.0, 2),
        (2.0, 3),
        (3.0, 1),
        (4.0, 0),
        (5.0, 0),
        (6.0, 0),
        (7.0, 0),
        (8.0, 0),
        (9.0, 0),
        (10.0, 7),
    ]
    assert df.loc["channel", "histogram"] is None
    page = render("bronze.feed", lake.version_label("bronze.feed"), df.reset_index())
    assert "pos (6), online (5)" in page
    assert page.count("<rect ") == 10 and "<title>up to 10: 7</title>" in page
    assert "Aoife" not in page and "Bram" not in page
