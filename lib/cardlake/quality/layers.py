"""Great Expectations suites for silver and gold: keys unique, foreign keys resolve, ranges and
cross-field rules; results appended to ``_ops.dq_results`` (the bronze suites' table), Data
Docs beside bronze's in ``<lake>/_ops/data_docs``.

Foreign keys are checked the GE way on a joined frame: each child row carries ``_fk_<name>``
(true when its key is found in the parent, or is NULL where NULL is allowed), expected to be
true everywhere. No expectation here lists values of personal columns in its result.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import functions as F
from pyspark.sql import types as T

from cardlake.quality.expectations import Check, ValidationOutcome, Validator

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from cardlake.tables import Tables

DQ_RESULTS = "_ops.dq_results"
DQ_SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType()), T.StructField("run_at", T.TimestampType()),
    T.StructField("suite_name", T.StringType()), T.StructField("expectation", T.StringType()),
    T.StructField("kwargs", T.StringType()), T.StructField("critical", T.BooleanType()),
    T.StructField("success", T.BooleanType()), T.StructField("observed", T.StringType()),
    T.StructField("batch_id", T.StringType()),
])


@dataclass(frozen=True)
class ForeignKey:
    name: str
    column: str
    parent: str
    parent_column: str


@dataclass(frozen=True)
class Suite:
    table: str
    checks: tuple[Check, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()


def _unique(*columns: str) -> Check:
    if len(columns) == 1:
        return Check("ExpectColumnValuesToBeUnique", {"column": columns[0]})
    return Check("ExpectCompoundColumnsToBeUnique", {"column_list": list(columns)})


def _not_null(column: str) -> Check:
    return Check("ExpectColumnValuesToNotBeNull", {"column": column})


def _between(column: str, low: float | None, high: float | None, critical: bool = True) -> Check:
    return Check("ExpectColumnValuesToBeBetween",
                 {"column": column, "min_value": low, "max_value": high}, critical=critical)


def _after(later: str, earlier: str, *, or_equal: bool = True, critical: bool = True) -> Check:
    return Check("ExpectColumnPairValuesAToBeGreaterThanB",
                 {"column_A": later, "column_B": earlier, "or_equal": or_equal,
                  "ignore_row_if": "either_value_is_missing"}, critical=critical)


def _fk(name: str, column: str, parent: str, parent_column: str | None = None) -> ForeignKey:
    return ForeignKey(name, column, parent, parent_column or column)


SUITES: tuple[Suite, ...] = (
    Suite("silver.customers", (
        _unique("customer_key"), _not_null("customer_key"),
        _after("join_date", "date_of_birth", or_equal=False),
        _between("credit_score", 300, 850, critical=False),
        _between("debt_outstanding_usd", 0, None),
    )),
    Suite("silver.customer_snapshots", (
        _unique("customer_key", "month"), _not_null("customer_key"),
    )),
    Suite("silver.crosswalk", (
        _not_null("customer_key"), _not_null("source_record_id"),
        _between("match_probability", 0, 1),
    ), (_fk("customer", "customer_key", "silver.customers"),)),
    Suite("silver.transactions", (
        _unique("transaction_id"), _not_null("amount_usd"), _not_null("ts"),
    ), (_fk("customer", "customer_key", "silver.customers"),)),
    Suite("silver.interactions", (
        _unique("interaction_id"), _after("resolved_at", "opened_at"),
        _between("resolution_hours", 0, None),
    ), (_fk("customer", "customer_key", "silver.customers"),)),
    Suite("gold.dim_customer", (
        _unique("customer_sk"), _unique("customer_key", "effective_from"),
        _after("effective_to", "effective_from"),
    )),
    Suite("gold.fact_transactions", (
        _unique("transaction_id"), _not_null("customer_sk"), _not_null("date_sk"),
        _between("revenue_usd", 0, None),
    ), (_fk("customer", "customer_sk", "gold.dim_customer"),
        _fk("date", "date_sk", "gold.dim_date"),
        _fk("merchant", "merchant_sk", "gold.dim_merchant"))),
    Suite("gold.customer_monthly_features", (
        _unique("customer_key", "month"),
        *(_between(c, 0, 1) for c in ("failed_rate", "atm_rate", "online_rate",
                                      "cross_border_rate", "night_rate")),
        _between("recency_days", 0, None), _between("age", 16, 120, critical=False),
    )),
    Suite("gold.kpi_monthly", (
        _unique("month"), _between("success_rate", 0, 1), _between("fraud_rate", 0, 1),
    )),
)


def with_foreign_keys(df: DataFrame, keys: Sequence[ForeignKey],
                      parent: Callable[[str], DataFrame]) -> DataFrame:
    """``df`` with ``_fk_<name>``: the key is NULL or found in its parent."""
    out = df
    for fk in keys:
        found = f"_found_{fk.name}"
        parents = parent(fk.parent).select(F.col(fk.parent_column).alias(found)).dropDuplicates()
        out = (out.join(parents, out[fk.column] == F.col(found), how="left")
               .withColumn(f"_fk_{fk.name}", F.col(fk.column).isNull() | F.col(found).isNotNull())
               .drop(found))
    return out


def run_suites(tables: Tables, *, suites: Sequence[Suite] = SUITES,
               data_docs_dir: str | None = None) -> list[ValidationOutcome]:
    """Validates every suite whose table exists; appends all results to ``_ops.dq_results``.

    Returns:
        The outcomes; the caller decides whether a critical failure fails its job.
    """
    validator = Validator(data_docs_dir=data_docs_dir)
    outcomes = []
    for suite in suites:
        if not tables.exists(suite.table) or not all(
                tables.exists(fk.parent) for fk in suite.foreign_keys):
            continue
        df = with_foreign_keys(tables.read(suite.table), suite.foreign_keys, tables.read).cache()
        checks = [*suite.checks, *(Check("ExpectColumnValuesToBeInSet",
                                         {"column": f"_fk_{fk.name}", "value_set": [True]})
                                   for fk in suite.foreign_keys)]
        try:
            outcomes.append(validator.validate(df, suite.table, checks))
        finally:
            df.unpersist()
    validator.build_docs()
    batch = f"layers-{uuid.uuid4().hex[:8]}"
    rows = [{**row, "batch_id": batch} for outcome in outcomes for row in outcome.rows()]
    if rows:
        tables.append(DQ_RESULTS, tables.spark.createDataFrame(rows, DQ_SCHEMA))
    return outcomes
