from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pytest

from cardlake.quality import Check, Validator
from cardlake.quality.expectations import nan_as_greatest


def test_validate_reports_critical_failures_and_writes_docs(spark, tmp_path: Path) -> None:
    df = spark.createDataFrame([("a", 1.0), ("b", None), (None, 5e7)], "k string, amount double")
    validator = Validator(data_docs_dir=str(tmp_path / "docs"))
    outcome = validator.validate(
        df,
        "demo.table",
        [
            Check("ExpectColumnToExist", {"column": "k"}),
            Check("ExpectColumnValuesToNotBeNull", {"column": "k"}),
            Check(
                "ExpectColumnValuesToBeBetween",
                {"column": "amount", "min_value": 0, "max_value": 1e6},
                critical=False,
            ),
        ],
    )
    validator.build_docs()
    assert [r.success for r in outcome.results] == [True, False, False]
    assert not outcome.success
    assert [r.check.expectation for r in outcome.critical_failures] == [
        "ExpectColumnValuesToNotBeNull"
    ]
    assert "ExpectColumnValuesToNotBeNull(column='k')" in outcome.failure_message()
    rows = outcome.rows()
    assert [(r["suite_name"], r["critical"], r["success"]) for r in rows] == [
        ("demo.table", True, True),
        ("demo.table", True, False),
        ("demo.table", False, False),
    ]
    assert (tmp_path / "docs" / "index.html").is_file()


# 4 rows: no limit or 3 rows go to Spark's engine, 4 (the limit met exactly) or 100 to pandas'.
@pytest.mark.parametrize(
    "pandas_max_rows",
    [None, 3, 4, 100],
    ids=["spark-engine", "one-row-past-the-limit", "at-the-limit", "pandas-engine"],
)
def test_both_engines_give_the_verdicts_spark_semantics_give(spark, pandas_max_rows) -> None:
    # Spark orders NaN above every number and does not count it as null; the pandas engine
    # would read NaN as missing, so the driver path turns it into +inf first.
    df = spark.createDataFrame(
        [
            ("a", 0.5, "2024-01"),
            ("b", float("nan"), "2024-02"),
            ("c", None, "2024-13x"),
            ("a", 2.0, None),
        ],
        "k string, score double, month string",
    )
    checks = [
        Check("ExpectColumnValuesToNotBeNull", {"column": "k"}),
        Check(
            "ExpectColumnValuesToBeBetween", {"column": "score", "min_value": 0, "max_value": 1}
        ),  # NaN and 2.0 fail
        Check("ExpectColumnValuesToBeBetween", {"column": "score", "min_value": 0}),  # NaN >= 0
        Check("ExpectColumnValuesToNotBeNull", {"column": "score"}),  # the None only
        Check(
            "ExpectColumnValuesToMatchRegex",
            {"column": "month", "regex": r"^\d{4}-(0[1-9]|1[0-2])$"},
        ),
        Check("ExpectColumnValuesToBeUnique", {"column": "k"}),
        Check("ExpectColumnValuesToBeInSet", {"column": "k", "value_set": ["a", "b", "c"]}),
    ]
    outcome = Validator(pandas_max_rows=pandas_max_rows).validate(df, "demo.engines", checks)
    assert [r.success for r in outcome.results] == [True, False, True, False, False, False, True]
    unexpected = [json.loads(r.observed).get("unexpected_count") for r in outcome.results]
    assert unexpected == [0, 2, 0, 1, 1, 2, 0]


@pytest.mark.parametrize(("known_rows", "on_driver"), [(5, False), (4, True), (None, True)])
def test_a_row_count_the_caller_knows_routes_the_suite_before_any_collect(
    spark, monkeypatch, known_rows, on_driver
) -> None:
    # Limit 4: a caller saying 5 rows sends the suite to Spark without collecting; 4 or no
    # count leaves it to the driver path, which collects at most 5 rows to decide.
    collected: list[int] = []
    original = Validator._on_driver

    def spy(self, df):
        collected.append(1)
        return original(self, df)

    monkeypatch.setattr(Validator, "_on_driver", spy)
    df = spark.createDataFrame([("a",), ("b",), (None,), ("d",)], "k string")
    checks = [Check("ExpectColumnValuesToNotBeNull", {"column": "k"})]
    outcome = Validator(pandas_max_rows=4).validate(df, "demo.rows", checks, rows=known_rows)
    assert [r.success for r in outcome.results] == [False]  # the same verdict either way
    assert json.loads(outcome.results[0].observed)["unexpected_count"] == 1
    assert bool(collected) is on_driver


@pytest.mark.parametrize("pandas_max_rows", [None, 1, 100])
def test_a_frame_the_caller_cached_stays_cached_and_no_other_does(spark, pandas_max_rows) -> None:
    checks = [Check("ExpectColumnValuesToNotBeNull", {"column": "k"})]
    validator = Validator(pandas_max_rows=pandas_max_rows)
    mine = spark.createDataFrame([("a",), ("b",)], "k string").cache()
    assert validator.validate(mine, "demo.cached", checks).success
    assert mine.is_cached  # bronze appends the frame it validated: its cache must survive
    other = spark.createDataFrame([("a",), ("b",)], "k string")
    assert validator.validate(other, "demo.uncached", checks).success
    assert not other.is_cached
    mine.unpersist()


def test_nan_becomes_greatest_and_null_stays_null() -> None:
    table = pa.table({"x": pa.array([1.0, float("nan"), None]), "s": ["a", "b", None]})
    out = nan_as_greatest(table)
    assert out.column("x").to_pylist() == [1.0, math.inf, None]
    assert out.column("s").to_pylist() == ["a", "b", None]


def test_a_run_shares_one_context_and_renders_docs_once_at_its_end(spark, tmp_path: Path) -> None:
    from cardlake.quality.expectations import one_context_per_run, validator

    docs = tmp_path / "docs"
    df = spark.createDataFrame([("a",)], "k string")
    checks = [Check("ExpectColumnValuesToNotBeNull", {"column": "k"})]
    with pytest.raises(RuntimeError, match="a stage failed"), one_context_per_run():
        first = validator(data_docs_dir=str(docs))
        first.validate(df, "run.bronze_suite", checks)
        first.build_docs()  # a stage's own call waits for the run's end
        assert not docs.exists()
        second = validator(data_docs_dir=str(docs))
        assert second is first  # one GE context for every stage of the run
        assert validator(data_docs_dir=str(docs), pandas_max_rows=None) is not first
        second.validate(df, "run.silver_suite", checks)
        raise RuntimeError("a stage failed")
    # Rendered once on the way out, the failed run included, with both stages' suites.
    index = (docs / "index.html").read_text()
    assert "run.bronze_suite" in index and "run.silver_suite" in index
    # Outside a run each call is its own context again.
    assert validator() is not validator()
