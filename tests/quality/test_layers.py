"""Silver and gold suites on tiny tables with known defects: each defect fails its expectation."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession

from cardlake.quality.layers import DQ_RESULTS, Suite, _after, _fk, _unique, run_suites
from cardlake.tables import Tables


def test_keys_foreign_keys_and_cross_field_rules(spark: SparkSession, rs_tables: Tables):
    d = dt.date
    rs_tables.overwrite("silver.customers", spark.createDataFrame([
        ("CK1", d(1990, 1, 1), d(2020, 1, 1)),
        ("CK2", d(2001, 1, 1), d(2000, 1, 1)),   # joined before birth
        ("CK2", None, d(2021, 1, 1)),            # duplicate key; a NULL birth date is skipped
    ], "customer_key string, date_of_birth date, join_date date"))
    rs_tables.overwrite("silver.crosswalk", spark.createDataFrame([
        ("crm", "R1", "CK1"), ("crm", "R2", "CK9"), ("crm", "R3", None),  # CK9 is nobody
    ], "source string, source_record_id string, customer_key string"))
    suites = (
        Suite("silver.customers", (_unique("customer_key"),
                                   _after("join_date", "date_of_birth", or_equal=False))),
        Suite("silver.crosswalk", (_unique("source", "source_record_id"),),
              (_fk("customer", "customer_key", "silver.customers"),)),
        Suite("gold.not_built", (_unique("x"),)),
    )

    outcomes = run_suites(rs_tables, suites=suites)

    found = {(o.suite_name, r.check.expectation, r.success) for o in outcomes for r in o.results}
    assert found == {
        ("silver.customers", "ExpectColumnValuesToBeUnique", False),
        ("silver.customers", "ExpectColumnPairValuesAToBeGreaterThanB", False),
        ("silver.crosswalk", "ExpectCompoundColumnsToBeUnique", True),
        ("silver.crosswalk", "ExpectColumnValuesToBeInSet", False),
    }
    stored = rs_tables.read(DQ_RESULTS).where("suite_name = 'silver.crosswalk'").collect()
    assert sorted((r["expectation"], r["success"]) for r in stored) == [
        ("ExpectColumnValuesToBeInSet", False), ("ExpectCompoundColumnsToBeUnique", True)]
