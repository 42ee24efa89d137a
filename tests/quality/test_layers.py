"""Silver and gold suites on tiny tables with known defects: each defect fails its expectation,
and every table the pipeline writes has a suite that lists no personal values."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import pkgutil
import re

import pytest
from pyspark.sql import SparkSession

from cardlake.config import Config, QualityConfig
from cardlake.governance.settings import load_governance
from cardlake.quality.layers import (
    DQ_RESULTS,
    SUITES,
    DataQualityError,
    Rule,
    Suite,
    _after,
    _fk,
    _unique,
    check_tables,
    checked_columns,
    raise_on_critical,
    run_suites,
    suites_for,
)
from cardlake.tables import Tables

TABLE_NAME = re.compile(r"^(silver|gold)\.[a-z0-9_]+$")


def test_keys_foreign_keys_and_cross_field_rules(spark: SparkSession, rs_tables: Tables):
    d = dt.date
    rs_tables.overwrite(
        "silver.customers",
        spark.createDataFrame(
            [
                ("CK1", d(1990, 1, 1), d(2020, 1, 1)),
                ("CK2", d(2001, 1, 1), d(2000, 1, 1)),  # joined before birth
                ("CK2", None, d(2021, 1, 1)),  # duplicate key; a NULL birth date is skipped
            ],
            "customer_key string, date_of_birth date, join_date date",
        ),
    )
    rs_tables.overwrite(
        "silver.crosswalk",
        spark.createDataFrame(
            [
                ("crm", "R1", "CK1"),
                ("crm", "R2", "CK9"),
                ("crm", "R3", None),  # CK9 is nobody
            ],
            "source string, source_record_id string, customer_key string",
        ),
    )
    suites = (
        Suite(
            "silver.customers",
            (_unique("customer_key"), _after("join_date", "date_of_birth", or_equal=False)),
        ),
        Suite(
            "silver.crosswalk",
            (_unique("source", "source_record_id"),),
            (_fk("customer", "customer_key", "silver.customers"),),
        ),
        Suite("gold.not_built", (_unique("x"),)),
    )

    outcomes = run_suites(rs_tables, suites=suites)

    assert {
        (o.suite_name, r.check.expectation, r.success) for o in outcomes for r in o.results
    } == {
        ("silver.customers", "ExpectColumnValuesToBeUnique", False),
        ("silver.customers", "ExpectColumnValuesToBeInSet", False),  # the rule's booleans
        ("silver.crosswalk", "ExpectCompoundColumnsToBeUnique", True),
        ("silver.crosswalk", "ExpectColumnValuesToBeInSet", False),
    }
    rule = next(
        r
        for o in outcomes
        for r in o.results
        if r.check.kwargs.get("column") == "_rule_join_date_after_date_of_birth"
    )
    assert "2001" not in rule.observed and "[false]" in rule.observed.lower()  # no birth date
    stored = rs_tables.read(DQ_RESULTS).where("suite_name = 'silver.crosswalk'").collect()
    assert sorted((r["expectation"], r["success"]) for r in stored) == [
        ("ExpectColumnValuesToBeInSet", False),
        ("ExpectCompoundColumnsToBeUnique", True),
    ]


def test_a_suite_checks_only_the_columns_it_reads_with_the_same_results(spark: SparkSession):
    from cardlake.quality.expectations import Check, Validator

    df = spark.createDataFrame(
        [
            ("CK1", 10.0, "2025-01", "note a"),
            ("CK1", -1.0, "2025-13", "note b"),  # a duplicate key, a negative, a bad month
            (None, None, None, None),
        ],
        "customer_key string, amount double, month string, note string",
    )
    checks = [
        Check("ExpectColumnValuesToBeUnique", {"column": "customer_key"}),
        Check("ExpectColumnValuesToBeBetween", {"column": "amount", "min_value": 0}),
        Check("ExpectCompoundColumnsToBeUnique", {"column_list": ["customer_key", "month"]}),
        Check("ExpectTableRowCountToEqual", {"value": 2}, critical=False),
    ]

    projected = checked_columns(df, checks)

    assert projected.columns == ["customer_key", "amount", "month"]  # "note" is read by none
    checker = Validator()
    whole = checker.validate(df, "t_whole", checks)
    part = checker.validate(projected, "t_part", checks)
    assert [(r.success, r.observed) for r in part.results] == [
        (r.success, r.observed) for r in whole.results
    ]
    assert [r.success for r in part.results] == [False, False, True, False]
    assert '"observed_value": 3' in part.results[3].observed
    table_level = [*checks, Check("ExpectTableColumnsToMatchSet", {"column_set": ["note"]})]
    assert checked_columns(df, table_level).columns == df.columns
    row_count_only = [Check("ExpectTableRowCountToEqual", {"value": 3})]
    assert checked_columns(df, row_count_only).columns == df.columns


def test_interactions_suite_passes_clean_data_and_fails_resolution_before_opening(
    spark: SparkSession, rs_tables: Tables
):
    ts = dt.datetime
    rs_tables.overwrite(
        "silver.customers", spark.createDataFrame([("CK1",)], "customer_key string")
    )
    rows = [
        ("I1", "CK1", ts(2025, 6, 1, 9), ts(2025, 6, 1, 11), 2.0, "2025-06"),
        ("I2", None, ts(2025, 6, 2, 9), None, None, "2025-06"),
    ]  # unknown caller, open
    schema = (
        "interaction_id string, customer_key string, opened_at timestamp, "
        "resolved_at timestamp, resolution_hours double, month string"
    )
    rs_tables.overwrite("silver.interactions", spark.createDataFrame(rows, schema))
    (clean,) = run_suites(rs_tables, suites=suites_for(["silver.interactions"]))
    assert clean.success and all(r.success for r in clean.results)

    rs_tables.overwrite(
        "silver.interactions",
        spark.createDataFrame(
            [*rows, ("I3", "CK1", ts(2025, 6, 3, 9), ts(2025, 6, 3, 8), -1.0, "2025-06")], schema
        ),
    )
    (broken,) = run_suites(rs_tables, suites=suites_for(["silver.interactions"]))
    assert {str(r.check.kwargs["column"]) for r in broken.critical_failures} == {
        "_rule_resolved_at_after_opened_at",
        "resolution_hours",
    }
    with pytest.raises(DataQualityError, match=r"silver\.interactions"):
        raise_on_critical([broken])


def test_model_outputs_fail_on_orphans_duplicates_and_bad_probabilities(
    spark: SparkSession, rs_tables: Tables
):
    rs_tables.overwrite(
        "silver.customers", spark.createDataFrame([("CK1",), ("CK2",)], "customer_key string")
    )
    schema = (
        "customer_key string, month string, score double, score_rank int, "
        "score_decile int, is_engaged boolean, model_version string"
    )
    good = [("CK1", "2025-06", 0.9, 1, 1, True, "3"), ("CK2", "2025-06", 0.1, 2, 10, True, "3")]
    rs_tables.overwrite("gold.engagement_scores", spark.createDataFrame(good, schema))
    (clean,) = run_suites(rs_tables, suites=suites_for(["gold.engagement_scores"]))
    assert [r.check.describe() for r in clean.results if not r.success] == []

    rs_tables.overwrite(
        "gold.engagement_scores",
        spark.createDataFrame(
            [
                *good,
                ("CK2", "2025-06", 0.5, 3, 5, True, "3"),  # a second score for one customer-month
                (
                    "CK7",
                    "2025-06",
                    1.5,
                    4,
                    11,
                    True,
                    "3",
                ),  # nobody; a probability above 1; decile 11
                ("CK1", "2025-13", 0.2, 5, 9, True, "3"),  # no such month
            ],
            schema,
        ),
    )
    (broken,) = run_suites(rs_tables, suites=suites_for(["gold.engagement_scores"]))
    assert {
        str(r.check.kwargs.get("column", r.check.kwargs.get("column_list")))
        for r in broken.critical_failures
    } == {"['customer_key', 'month']", "_fk_customer", "score", "score_decile", "month"}


def test_type2_history_fails_on_overlap_and_two_current_versions(
    spark: SparkSession, rs_tables: Tables
):
    d = dt.date
    rs_tables.overwrite("gold.dim_location", spark.createDataFrame([(1,)], "location_sk long"))
    rs_tables.overwrite(
        "gold.dim_product",
        spark.createDataFrame([(-1, "UNKNOWN")], "product_sk long, product string"),
    )
    schema = (
        "customer_sk long, customer_key string, date_of_birth date, join_date date, "
        "location_sk long, plan_sk long, effective_from date, effective_to date, "
        "is_current boolean"
    )
    end = d(9999, 12, 31)
    good = [
        (1, "CK1", d(1990, 1, 1), d(2020, 1, 1), 1, -1, d(2024, 1, 1), d(2024, 3, 31), False),
        (2, "CK1", d(1990, 1, 1), d(2020, 1, 1), 1, -1, d(2024, 4, 1), end, True),
    ]
    rs_tables.overwrite("gold.dim_customer", spark.createDataFrame(good, schema))
    (clean,) = run_suites(rs_tables, suites=suites_for(["gold.dim_customer"]))
    assert [r.check.describe() for r in clean.results if not r.success] == []

    rs_tables.overwrite(
        "gold.dim_customer",
        spark.createDataFrame(
            [*good, (3, "CK1", d(1990, 1, 1), d(2020, 1, 1), 1, -1, d(2024, 3, 1), end, True)],
            schema,
        ),
    )
    (broken,) = run_suites(rs_tables, suites=suites_for(["gold.dim_customer"]))
    assert {str(r.check.kwargs["column"]) for r in broken.critical_failures} == {
        "_rule_one_current_version",
        "_rule_versions_do_not_overlap",
    }


def test_a_stage_gate_fails_on_a_critical_failure_unless_stage_checks_are_off(
    spark: SparkSession, rs_tables: Tables, cfg: Config
):
    ts = dt.datetime
    rs_tables.overwrite(
        "silver.customers", spark.createDataFrame([("CK1",)], "customer_key string")
    )
    rs_tables.overwrite(
        "silver.interactions",
        spark.createDataFrame(
            [
                ("I1", "CK1", ts(2025, 6, 1, 9), ts(2025, 6, 1, 8), -1.0, "2025-06")
            ],  # resolved first
            "interaction_id string, customer_key string, opened_at timestamp, "
            "resolved_at timestamp, resolution_hours double, month string",
        ),
    )
    off = dataclasses.replace(cfg, quality=QualityConfig(stage_checks=False))
    assert check_tables(rs_tables, off, ["silver.interactions"]) == []
    assert not rs_tables.exists(DQ_RESULTS)  # nothing validated, nothing recorded

    on = dataclasses.replace(
        off,
        quality=QualityConfig(stage_checks=True),
        paths=dataclasses.replace(cfg.paths, lake_root=rs_tables.lake_root),
    )
    with pytest.raises(DataQualityError, match=r"silver\.interactions"):
        check_tables(rs_tables, on, ["silver.interactions"])
    assert rs_tables.read(DQ_RESULTS).where("NOT success").count() >= 1


def pipeline_tables() -> set[str]:
    """Every silver and gold table the pipeline writes, from the code's table-name constants:
    the stages' TABLES and every module-level ``*_TABLE`` constant of the packages
    the pipeline runs."""
    import cardlake.analytics
    import cardlake.gold
    import cardlake.ml
    import cardlake.silver
    from cardlake.analytics.job import written_tables
    from cardlake.gold.job import TABLES as GOLD
    from cardlake.ml.job import TABLES as MODELS
    from cardlake.silver.job import TABLES as SILVER

    names = {*SILVER, *GOLD, *MODELS, *written_tables()}
    for package in (cardlake.silver, cardlake.gold, cardlake.ml, cardlake.analytics):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            names |= {
                v
                for k, v in vars(module).items()
                if k.endswith("_TABLE") and isinstance(v, str) and TABLE_NAME.match(v)
            }
    return names


def test_every_table_the_pipeline_writes_has_a_suite() -> None:
    tables = pipeline_tables()
    assert len(tables) >= 45  # 16 silver, 32 gold when this was written
    assert sorted(tables - {s.table for s in SUITES}) == []
    assert len({s.table for s in SUITES}) == len(SUITES)  # one suite per table


def test_no_expectation_lists_values_of_a_personal_column() -> None:
    # Values reach _ops.dq_results and Data Docs in partial_unexpected_list; personal and
    # sensitive columns are checked through _rule_/_fk_ booleans instead.
    governance = load_governance("test")
    leaks = []
    for suite in SUITES:
        for check in suite.expectations():
            if check.expectation == "ExpectColumnValuesToNotBeNull":
                continue  # lists only NULLs
            kwargs = check.kwargs
            columns = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
            columns += list(kwargs.get("column_list", ()))
            for column in columns:
                rule = governance.rule(suite.table, column)
                if rule is not None and rule.classification != "none":
                    leaks.append(f"{suite.table}.{column}: {check.describe()}")
    assert leaks == []


def test_rules_are_valid_spark_sql(spark: SparkSession) -> None:
    from pyspark.sql import functions as F

    for suite in SUITES:
        for rule in suite.rules:
            assert isinstance(rule, Rule)
            F.expr(rule.condition)  # parses; a typo fails here, not mid-pipeline
