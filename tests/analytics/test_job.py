"""``gold.customer_360``'s month path (``write_customer_360(tables, month=...)``) on a tiny
hand-made lake: a full build as of January, then February's run upserts February's customers
and removes the one who closed in January. Every expected row is written out by hand."""

from __future__ import annotations

from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from cardlake.analytics.job import write_customer_360
from cardlake.silver.schemas import CUSTOMERS
from cardlake.tables import Tables

DEC, JAN, FEB = "2023-12", "2024-01", "2024-02"
NO_VALUE = (
    "age",
    "credit_score",
    "tx_count",
    "recency_days",
    "frequency_12m",
    "monetary_12m_usd",
    "eng_count_3m",
    "eng_days_3m",
    "clv_estimate_usd",
)
FEATURES = "customer_key string, month string, tenure_months int, spend_usd double, " + ", ".join(
    f"{c} double" for c in NO_VALUE
)
RFM = "customer_key string, month string, rfm_cell string, rfm_group string"
SHOWN = (
    "customer_key string, as_of_month string, first_name string, plan_type string, "
    "status string, tenure_months int, spend_usd double, rfm_group string"
)


def features(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    """(customer, month, tenure, spend) rows; the other features are unknown (null)."""
    return spark.createDataFrame([(*r, *([None] * len(NO_VALUE))) for r in rows], FEATURES)


def customers(spark: SparkSession, rows: list[tuple[str, str | None, str, str]]) -> DataFrame:
    """The golden record: (customer, first name, plan, status) rows."""
    names = [f.name for f in CUSTOMERS.fields]
    return spark.createDataFrame(
        [
            tuple(
                {"customer_key": k, "first_name": n, "plan_type": p, "status": s}.get(c)
                for c in names
            )
            for k, n, p, s in rows
        ],
        CUSTOMERS,
    )


def shown(tables: Tables) -> DataFrame:
    return tables.read("gold.customer_360").select(*[c.split()[0] for c in SHOWN.split(", ")])


@pytest.fixture
def as_of_january(spark: SparkSession, rs_tables: Tables) -> Tables:
    """January's lake, 360 built in full: c1 and c4 on the books; c3 closed in January (on the
    books that month, gone in February); c2 joins in February. One engine: the upsert is the
    point here, the engines' merge and delete have their own tests in tests/tables."""
    tables = rs_tables
    tables.overwrite(
        "gold.customer_monthly_features",
        features(
            spark,
            [
                ("c1", DEC, 4, 80.0),
                ("c1", JAN, 5, 100.0),
                ("c3", JAN, 7, 5.0),
                ("c4", JAN, 12, None),
            ],
        ),
        partition_by=["month"],
    )
    tables.overwrite(
        "silver.customers",
        customers(
            spark,
            [
                ("c1", "Ann", "standard", "active"),
                ("c3", "Cy", "standard", "closed"),
                ("c4", None, "standard", "active"),
            ],
        ),
    )
    tables.overwrite(
        "gold.customer_rfm",
        spark.createDataFrame(
            [
                ("c1", JAN, "344", "loyal"),
                ("c3", JAN, "233", "at_risk"),
                ("c4", JAN, "111", "hibernating"),
            ],
            RFM,
        ),
        partition_by=["month"],
    )
    assert write_customer_360(tables, month=None) == 3
    assert_df_equality(
        shown(tables),
        spark.createDataFrame(
            [
                ("c1", JAN, "Ann", "standard", "active", 5, 100.0, "loyal"),
                (
                    "c3",
                    JAN,
                    "Cy",
                    "standard",
                    "closed",
                    7,
                    5.0,
                    "at_risk",
                ),  # flagged in its last month
                ("c4", JAN, None, "standard", "active", 12, None, "hibernating"),
            ],
            SHOWN,
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    return tables


def with_february(spark: SparkSession, tables: Tables) -> None:
    """What gold and silver add for February: c1 moved to premium and spent more, c2 joined."""
    tables.replace_partitions(
        "gold.customer_monthly_features",
        features(
            spark,
            [
                ("c1", FEB, 6, 250.0),
                ("c2", FEB, 0, 30.0),
                ("c4", FEB, 12, None),
            ],
        ),
        partitions={"month": [FEB]},
        partition_by=["month"],
    )
    tables.overwrite(
        "silver.customers",
        customers(
            spark,
            [
                ("c1", "Ann", "premium", "active"),
                ("c2", "Bo", "standard", "active"),
                ("c3", "Cy", "standard", "closed"),
                ("c4", None, "standard", "active"),
            ],
        ),
    )
    tables.replace_partitions(
        "gold.customer_rfm",
        spark.createDataFrame(
            [
                ("c1", FEB, "555", "champions"),
                ("c4", FEB, "111", "hibernating"),
            ],
            RFM,
        ),
        partitions={"month": [FEB]},
        partition_by=["month"],
    )


FEBRUARY = [
    ("c1", FEB, "Ann", "premium", "active", 6, 250.0, "champions"),  # changed: updated
    ("c2", FEB, "Bo", "standard", "active", 0, 30.0, None),  # joined: inserted, no RFM yet
    # c3 closed in January: no longer current, removed (its history stays in gold.dim_customer)
    ("c4", FEB, None, "standard", "active", 12, None, "hibernating"),  # same values, new month
]


def test_a_months_run_updates_inserts_and_removes_the_closed(spark, as_of_january):
    tables = as_of_january
    with_february(spark, tables)

    assert write_customer_360(tables, month=FEB) == 3
    assert_df_equality(
        shown(tables),
        spark.createDataFrame(FEBRUARY, SHOWN),
        ignore_row_order=True,
        ignore_nullable=True,
    )

    # run twice, the month leaves the table as one run would
    assert write_customer_360(tables, month=FEB) == 3
    assert_df_equality(
        shown(tables),
        spark.createDataFrame(FEBRUARY, SHOWN),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_an_older_month_or_one_without_features_leaves_the_table_alone(as_of_january):
    tables = as_of_january
    version = tables.version("gold.customer_360")

    # December has features (c1's), but the table is as of January: a backfill
    assert write_customer_360(tables, month=DEC) == 3
    # February's gold has not run: no customer is on the books, which is not "all closed"
    assert write_customer_360(tables, month=FEB) == 3

    assert tables.version("gold.customer_360") == version
