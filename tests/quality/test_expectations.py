from __future__ import annotations

from pathlib import Path

from cardlake.quality import Check, Validator


def test_validate_reports_critical_failures_and_writes_docs(spark, tmp_path: Path) -> None:
    df = spark.createDataFrame([("a", 1.0), ("b", None), (None, 5e7)], "k string, amount double")
    validator = Validator(data_docs_dir=str(tmp_path / "docs"))
    outcome = validator.validate(df, "demo.table", [
        Check("ExpectColumnToExist", {"column": "k"}),
        Check("ExpectColumnValuesToNotBeNull", {"column": "k"}),
        Check("ExpectColumnValuesToBeBetween",
              {"column": "amount", "min_value": 0, "max_value": 1e6}, critical=False),
    ])
    validator.build_docs()
    assert [r.success for r in outcome.results] == [True, False, False]
    assert not outcome.success
    assert [r.check.expectation for r in outcome.critical_failures] == [
        "ExpectColumnValuesToNotBeNull"]
    assert "ExpectColumnValuesToNotBeNull(column='k')" in outcome.failure_message()
    rows = outcome.rows()
    assert [(r["suite_name"], r["critical"], r["success"]) for r in rows] == [
        ("demo.table", True, True), ("demo.table", True, False), ("demo.table", False, False)]
    assert (tmp_path / "docs" / "index.html").is_file()
