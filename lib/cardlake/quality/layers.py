"""Great Expectations suites for silver and gold: keys unique, foreign keys resolve, ranges and
cross-field rules; results appended to ``_ops.dq_results`` (the bronze suites' table, one row
per expectation, ``suite_name`` the table's name), Data Docs beside bronze's in
``<lake>/_ops/data_docs``.

Every silver and gold table the pipeline writes has a suite in :data:`SUITES`; each stage
validates the tables it wrote (:func:`check_tables`) and fails with :class:`DataQualityError`
when a critical expectation fails, after recording every result, as bronze does.

Foreign keys and cross-field rules are checked the GE way on a derived frame: each row carries
``_fk_<name>`` (its key is found in the parent, or is NULL where NULL is allowed) or
``_rule_<name>`` (a Spark SQL condition; NULL when an input is missing, and then skipped),
expected to be true everywhere. So no expectation here lists values of personal columns in its
result: a rule over a personal or sensitive column (date of birth, credit score, a card id)
lists only booleans, and tests/quality/test_layers.py keeps it so against conf/governance.yaml.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import functions as F
from pyspark.sql import types as T

from cardlake.config import is_object_store, local_path
from cardlake.errors import JobFailed
from cardlake.months import MONTH_PATTERN
from cardlake.quality.expectations import (
    DEFAULT_PANDAS_MAX_ROWS,
    Check,
    Collected,
    ValidationOutcome,
    validator,
)
from cardlake.threads import prefetched

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from cardlake.config import Config
    from cardlake.tables import Tables

log = logging.getLogger(__name__)

DQ_RESULTS = "_ops.dq_results"
DQ_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType()),
        T.StructField("run_at", T.TimestampType()),
        T.StructField("suite_name", T.StringType()),
        T.StructField("expectation", T.StringType()),
        T.StructField("kwargs", T.StringType()),
        T.StructField("critical", T.BooleanType()),
        T.StructField("success", T.BooleanType()),
        T.StructField("observed", T.StringType()),
        T.StructField("batch_id", T.StringType()),
    ]
)
OPEN_END = "DATE'9999-12-31'"  # effective_to of a type-2 row still in force


class DataQualityError(JobFailed):
    """A critical expectation of a silver or gold suite failed (results are recorded)."""


@dataclass(frozen=True)
class ForeignKey:
    """``column`` must be found in ``parent``.``parent_column`` (NULL allowed); rows where the
    SQL condition ``where`` is false are not checked (history rows of a type-2 table)."""

    name: str
    column: str
    parent: str
    parent_column: str
    where: str | None = None


@dataclass(frozen=True)
class Rule:
    """A row-level condition in Spark SQL, checked as ``_rule_<name>`` in {true}.

    NULL (an input missing) is skipped, as GE skips NULLs; window functions are allowed
    (``count(1) OVER (PARTITION BY k) = 1``).
    """

    name: str
    condition: str
    critical: bool = True

    @property
    def column(self) -> str:
        return f"_rule_{self.name}"

    def check(self) -> Check:
        return Check(
            "ExpectColumnValuesToBeInSet",
            {"column": self.column, "value_set": [True], "notes": self.condition},
            critical=self.critical,
        )


@dataclass(frozen=True)
class Suite:
    table: str
    checks: tuple[Check | Rule, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(c for c in self.checks if isinstance(c, Rule))

    def expectations(self) -> list[Check]:
        """The checks as GE runs them: rules and foreign keys on their derived columns."""
        return [
            *(c.check() if isinstance(c, Rule) else c for c in self.checks),
            *(
                Check(
                    "ExpectColumnValuesToBeInSet", {"column": f"_fk_{fk.name}", "value_set": [True]}
                )
                for fk in self.foreign_keys
            ),
        ]


def _unique(*columns: str) -> Check:
    if len(columns) == 1:
        return Check("ExpectColumnValuesToBeUnique", {"column": columns[0]})
    return Check("ExpectCompoundColumnsToBeUnique", {"column_list": list(columns)})


def _unique_masked(name: str, *columns: str) -> Rule:
    """Uniqueness of a personal key as a rule: the result lists booleans, not the keys."""
    keys = ", ".join(columns)
    return Rule(name, f"count(1) OVER (PARTITION BY {keys}) = 1")


def _not_null(*columns: str) -> tuple[Check, ...]:
    return tuple(Check("ExpectColumnValuesToNotBeNull", {"column": c}) for c in columns)


def _between(
    column: str,
    low: float | None,
    high: float | None,
    critical: bool = True,
    *,
    strict_min: bool = False,
) -> Check:
    kwargs: dict[str, object] = {"column": column, "min_value": low, "max_value": high}
    if strict_min:
        kwargs["strict_min"] = True
    return Check("ExpectColumnValuesToBeBetween", kwargs, critical=critical)


def _non_negative(*columns: str) -> tuple[Check, ...]:
    return tuple(_between(c, 0, None) for c in columns)


def _share(*columns: str) -> tuple[Check, ...]:
    """Probabilities, rates and shares: in [0, 1]."""
    return tuple(_between(c, 0, 1) for c in columns)


def _in_set(column: str, values: Sequence[str]) -> Check:
    return Check("ExpectColumnValuesToBeInSet", {"column": column, "value_set": list(values)})


def _month(column: str = "month") -> Check:
    return Check(
        "ExpectColumnValuesToMatchRegex", {"column": column, "regex": MONTH_PATTERN.pattern}
    )


def _rule(name: str, condition: str, *, critical: bool = True) -> Rule:
    return Rule(name, condition, critical)


def _after(later: str, earlier: str, *, or_equal: bool = True, critical: bool = True) -> Rule:
    op = ">=" if or_equal else ">"
    return Rule(f"{later}_after_{earlier}", f"{later} {op} {earlier}", critical)


def _at_most(small: str, large: str) -> Rule:
    """A part never exceeds its whole (completed <= all transactions)."""
    return Rule(f"{small}_le_{large}", f"{small} <= {large}")


def _fk(
    name: str,
    column: str,
    parent: str,
    parent_column: str | None = None,
    *,
    where: str | None = None,
) -> ForeignKey:
    return ForeignKey(name, column, parent, parent_column or column, where)


def _customer(column: str = "customer_key") -> ForeignKey:
    """A person's key resolves to a golden record."""
    return _fk("customer", column, "silver.customers", "customer_key")


_JOIN_AFTER_BIRTH = _after("join_date", "date_of_birth", or_equal=False)
_STATES = ("completed", "failed", "declined", "reverted", "pending")
_CHANNELS = ("POS", "ATM", "ONLINE", "P2P", "TOPUP", "FX", "CRYPTO", "STOCK")
_TIERS = ("Low", "Medium", "High")


SILVER_SUITES: tuple[Suite, ...] = (
    Suite(
        "silver.customers",
        (
            _unique("customer_key"),
            *_not_null("customer_key", "status"),
            _JOIN_AFTER_BIRTH,
            _rule("credit_score_in_range", "credit_score BETWEEN 300 AND 850", critical=False),
            _rule("debt_not_negative", "debt_outstanding_usd >= 0"),
            _month("closed_month"),
            _rule("closed_iff_closed_month", "(status = 'closed') = (closed_month IS NOT NULL)"),
            _rule("closed_after_join", "closed_month >= date_format(join_date, 'yyyy-MM')"),
        ),
    ),
    Suite(
        "silver.customer_snapshots",
        (
            _unique("customer_key", "month"),
            *_not_null("customer_key", "month"),
            _month(),
            _JOIN_AFTER_BIRTH,
            _rule("month_after_join", "month >= date_format(join_date, 'yyyy-MM')"),
            _rule("closed_after_join", "closed_month >= date_format(join_date, 'yyyy-MM')"),
        ),
        (_customer(),),
    ),
    Suite(
        "silver.crosswalk",
        (
            *_not_null("customer_key", "source", "source_record_id", "valid_from", "is_current"),
            _unique_masked("record_version_unique", "source", "source_record_id", "valid_from"),
            _rule(
                "one_current_version",
                "sum(CAST(is_current AS INT)) OVER (PARTITION BY source, source_record_id) <= 1",
            ),
            _in_set("match_method", ("deterministic", "probabilistic", "singleton")),
            *_share("match_probability"),
            _month("valid_from"),
            _month("valid_to"),
            _after("valid_to", "valid_from"),
            _rule("current_iff_open", "is_current = (valid_to IS NULL)"),
        ),
        (_fk("customer", "customer_key", "silver.customers", where="is_current"),),
    ),
    Suite(
        "silver.transactions",
        (
            _unique("transaction_id"),
            *_not_null("transaction_id", "amount_usd", "ts", "month"),
            _month(),
            _between("amount_usd", 0, None, strict_min=True),
            _between("units_per_usd", 0, None, strict_min=True),
            _in_set("channel", _CHANNELS),
            _in_set("state", _STATES),
            _in_set("direction", ("debit", "credit")),
            _in_set("instrument_type", ("card", "wallet")),
            _rule("txn_date_is_ts_date", "txn_date = to_date(ts)"),
            _rule("month_is_ts_month", "month = date_format(ts, 'yyyy-MM')"),
            _after("fraud_reported_at", "ts"),
        ),
        (_customer(), _fk("merchant", "merchant_id", "silver.merchants")),
    ),
    Suite(
        "silver.interactions",
        (
            _unique("interaction_id"),
            *_not_null("interaction_id", "opened_at", "month"),
            _month(),
            _after("resolved_at", "opened_at"),
            _between("resolution_hours", 0, None),
            _rule("month_is_opened_month", "month = date_format(opened_at, 'yyyy-MM')"),
        ),
        (_customer(),),
    ),
    Suite(
        "silver.marketing_monthly",
        (
            *_not_null("month"),
            _month(),
            # Statistical, not logical: the source's grain is (contact_id, month) and silver keeps
            # only customer_key, so a duplicate here means entity resolution put two people's
            # contacts under one key (an over-merge, measured by silver.er_metrics' precision).
            Check(
                "ExpectCompoundColumnsToBeUnique",
                {"column_list": ["customer_key", "month"]},
                critical=False,
            ),
            *_non_negative("notifications_sent", "notifications_failed", "notifications_opened"),
            _rule(
                "opened_and_failed_le_sent",
                "notifications_opened + notifications_failed <= notifications_sent",
            ),
        ),
        (_customer(),),
    ),
    Suite(
        "silver.product_usage",
        (
            _unique("usage_id"),
            *_not_null("usage_id", "month"),
            _month(),
            _between("sessions", 1, None),
            _between("minutes", 0, None),
            _rule("last_seen_in_month", "date_format(last_seen, 'yyyy-MM') = month"),
        ),
        (_customer(),),
    ),
    Suite(
        "silver.unresolved_activity",
        (
            _unique_masked("row_unique", "source", "row_id"),
            *_not_null("source", "source_record_id", "row_id", "month", "reason"),
            _month(),
            _in_set("source", ("product_usage", "marketing_monthly")),
            _in_set("reason", ("no_customer_source",)),
            # Activity of records linked to no customer: kept apart, and let in once a later
            # delivery links them, so a warning with the count to look at, not a stop.
            Check("ExpectTableRowCountToEqual", {"value": 0}, critical=False),
        ),
    ),
    Suite(
        "silver.merchants",
        (
            _unique("merchant_id"),
            *_not_null("merchant_id"),
            Check("ExpectColumnValuesToMatchRegex", {"column": "mcc", "regex": r"^[0-9]{4}$"}),
        ),
    ),
    Suite(
        "silver.accounts",
        (
            _unique("account_id"),
            *_not_null("account_id", "customer_key"),
            # A balance "as of" before its account opened is a core-banking defect worth a
            # warning, not a reason to stop silver (the generator never writes one).
            _rule("opened_before_as_of", "opened <= to_date(as_of)", critical=False),
        ),
        (_customer(),),
    ),
    Suite(
        "silver.cards",
        (
            _unique_masked("card_id_unique", "card_id"),
            *_not_null("card_id", "customer_key"),
        ),
        (_customer(),),
    ),
    Suite(
        "silver.debts",
        (
            _unique("debt_id"),
            *_not_null("debt_id", "customer_key"),
            _in_set("status", ("current", "late", "default")),
            _rule("outstanding_within_principal", "outstanding BETWEEN 0 AND principal"),
            _rule("interest_rate_is_a_rate", "interest_rate BETWEEN 0 AND 1"),
        ),
        (_customer(),),
    ),
    Suite(
        "silver.fx_rates",
        (
            _unique("date", "currency"),
            *_not_null("date", "currency", "units_per_usd"),
            _between("units_per_usd", 0, None, strict_min=True),
        ),
    ),
    Suite(
        "silver.er_metrics",
        (
            _unique("month", "metric"),
            *_not_null("month", "metric"),
            _month(),
            _between("value", 0, None),
        ),
    ),
    Suite(
        "silver.er_model",
        (
            Check("ExpectTableRowCountToEqual", {"value": 1}),
            _month("trained_month"),
            *_share("threshold"),
            _between("records", 0, None),
        ),
    ),
    Suite(
        "silver.er_records",
        (
            *_not_null("uid", "source", "source_record_id"),
            _unique_masked("uid_unique", "uid"),
        ),
    ),
    Suite(
        "silver.key_events",
        (
            *_not_null("event", "customer_key", "other_key"),
            _in_set("event", ("merge", "split")),
            _month(),
            _between("records", 1, None),
            _rule("other_key_differs", "customer_key <> other_key"),
        ),
    ),
)

_DIM_CUSTOMER = "gold.dim_customer"
GOLD_SUITES: tuple[Suite, ...] = (
    Suite(
        _DIM_CUSTOMER,
        (
            _unique("customer_sk"),
            _unique("customer_key", "effective_from"),
            *_not_null("customer_sk", "customer_key", "effective_from", "effective_to"),
            _after("effective_to", "effective_from"),
            _JOIN_AFTER_BIRTH,
            _rule(
                "one_current_version",
                "sum(CAST(is_current AS INT)) OVER (PARTITION BY customer_key) = 1",
            ),
            _rule("current_iff_open_end", f"is_current = (effective_to = {OPEN_END})"),
            _rule(
                "versions_do_not_overlap",
                "lead(effective_from) OVER (PARTITION BY customer_key ORDER BY effective_from)"
                " > effective_to",
            ),
        ),
        (
            _fk("location", "location_sk", "gold.dim_location"),
            _fk("plan", "plan_sk", "gold.dim_product", "product_sk"),
        ),
    ),
    Suite(
        "gold.dim_account",
        (_unique("account_sk"), _unique("account_id"), *_not_null("account_sk")),
        (_customer(),),
    ),
    Suite(
        "gold.dim_card",
        (_unique("card_sk"), _unique_masked("card_id_unique", "card_id"), *_not_null("card_sk")),
        (_customer(),),
    ),
    Suite(
        "gold.dim_merchant",
        (
            _unique("merchant_sk"),
            _unique("merchant_id"),
            *_not_null("merchant_sk"),
        ),
        (_fk("location", "location_sk", "gold.dim_location"),),
    ),
    Suite(
        "gold.dim_date",
        (
            _unique("date_sk"),
            _unique("date"),
            *_not_null("date_sk"),
            _month(),
            _between("month_of_year", 1, 12),
            _between("quarter", 1, 4),
            _between("day_of_month", 1, 31),
            _between("iso_day_of_week", 1, 7),
            _rule("date_sk_is_date", "date_sk = CAST(date_format(date, 'yyyyMMdd') AS INT)"),
        ),
    ),
    Suite("gold.dim_location", (_unique("location_sk"), *_not_null("location_sk"))),
    Suite(
        "gold.dim_product",
        (_unique("product_sk"), _unique("product"), *_not_null("product_sk", "product")),
    ),
    Suite(
        "gold.dim_channel",
        (
            _unique("channel_sk"),
            _unique("channel"),
            *_not_null("channel_sk", "channel"),
            _between("fee_usd", 0, None),
        ),
    ),
    Suite(
        "gold.fact_transactions",
        (
            _unique("transaction_id"),
            *_not_null("transaction_id", "customer_sk", "date_sk", "month"),
            _month(),
            *_non_negative("revenue_usd", "fee_usd", "fx_margin_usd"),
            _between("amount_usd", 0, None, strict_min=True),
            _rule(
                "revenue_is_fee_plus_fx_margin", "abs(fee_usd + fx_margin_usd - revenue_usd) < 0.01"
            ),
            _rule("date_sk_is_ts_date", "date_sk = CAST(date_format(ts, 'yyyyMMdd') AS INT)"),
        ),
        (
            _fk("customer", "customer_sk", _DIM_CUSTOMER),
            _fk("date", "date_sk", "gold.dim_date"),
            _fk("merchant", "merchant_sk", "gold.dim_merchant"),
            _fk("account", "account_sk", "gold.dim_account"),
            _fk("card", "card_sk", "gold.dim_card"),
            _fk("channel", "channel_sk", "gold.dim_channel"),
            _fk("merchant_location", "merchant_location_sk", "gold.dim_location", "location_sk"),
        ),
    ),
    Suite(
        "gold.fact_interactions",
        (
            _unique("interaction_id"),
            *_not_null("interaction_id", "customer_sk", "date_sk"),
            _month(),
            _after("resolved_at", "opened_at"),
            _between("resolution_hours", 0, None),
            _rule("resolved_iff_resolved_at", "is_resolved = (resolved_at IS NOT NULL)"),
        ),
        (
            _fk("customer", "customer_sk", _DIM_CUSTOMER),
            _fk("date", "date_sk", "gold.dim_date"),
            _fk("channel", "channel_sk", "gold.dim_channel"),
        ),
    ),
    Suite(
        "gold.fact_product_usage",
        (
            _unique("usage_id"),
            *_not_null("usage_id", "customer_sk", "product_sk", "date_sk"),
            _month(),
            _between("sessions", 1, None),
            _between("minutes", 0, None),
        ),
        (
            _fk("customer", "customer_sk", _DIM_CUSTOMER),
            _fk("date", "date_sk", "gold.dim_date"),
            _fk("product", "product_sk", "gold.dim_product"),
        ),
    ),
    Suite(
        "gold.customer_monthly_features",
        (
            _unique("customer_key", "month"),
            *_not_null("customer_key", "month"),
            _month(),
            *_share(
                "failed_rate",
                "atm_rate",
                "online_rate",
                "cross_border_rate",
                "night_rate",
                "discretionary_share",
                "notification_fail_rate",
            ),
            *_non_negative(
                "tx_count",
                "completed_count",
                "failed_count",
                "night_count",
                "spend_usd",
                "recency_days",
                "frequency_12m",
                "monetary_12m_usd",
                "tenure_months",
                "service_contacts",
                "notifications_sent",
            ),
            _at_most("completed_count", "tx_count"),
            _at_most("failed_count", "tx_count"),
            _at_most("night_count", "tx_count"),
            _at_most("service_unresolved", "service_contacts"),
            _rule("active_iff_completed", "is_active = (completed_count > 0)"),
            _rule("age_plausible", "age BETWEEN 16 AND 120", critical=False),
            _rule("credit_score_in_range", "credit_score BETWEEN 300 AND 850", critical=False),
        ),
        (_customer(),),
    ),
    Suite(
        "gold.kpi_monthly",
        (
            _unique("month"),
            *_not_null("month"),
            _month(),
            *_share("success_rate", "fraud_rate", "notification_fail_rate"),
            *_non_negative("tx_count", "customers", "revenue_usd"),
            _at_most("completed_count", "tx_count"),
            _at_most("active_customers", "customers"),
            _at_most("new_customers", "customers"),
        ),
    ),
    Suite(
        "gold.kpi_state_monthly",
        (
            _unique("month", "state"),
            *_not_null("month", "state"),
            _month(),
            _in_set("state", _STATES),
            *_share("count_share"),
            *_non_negative("tx_count"),
        ),
    ),
    Suite(
        "gold.kpi_country_monthly",
        (
            _unique("month", "country"),
            *_not_null("month", "country"),
            _month(),
            *_non_negative("customers", "tx_count", "spend_usd"),
            _at_most("active_customers", "customers"),
            _at_most("new_customers", "customers"),
        ),
    ),
    Suite(
        "gold.kpi_plan_monthly",
        (
            _unique("month", "plan_type"),
            *_not_null("month"),
            _month(),
            *_share("share"),
            *_non_negative("customers"),
        ),
    ),
)

MODEL_SUITES: tuple[Suite, ...] = (
    Suite(
        "gold.customer_segments",
        (
            _unique("customer_key", "month"),
            *_not_null("customer_key", "month", "segment"),
            _month(),
            _between("cluster", 0, None),
        ),
        (_customer(),),
    ),
    Suite(
        "gold.engagement_scores",
        (
            _unique("customer_key", "month"),
            *_not_null("customer_key", "month", "score"),
            _month(),
            *_share("score"),
            _between("score_decile", 1, 10),
            _between("score_rank", 1, None),
        ),
        (_customer(),),
    ),
    Suite(
        "gold.experiment_assignment",
        (
            _unique("customer_key", "month", "experiment"),
            *_not_null("customer_key", "month", "experiment", "group"),
            _month(),
            _in_set("group", ("control", "test")),
            *_share("score"),
            _between("score_rank", 1, None),
        ),
        (_customer(),),
    ),
    Suite(
        "gold.fraud_alerts",
        (
            _unique("transaction_id"),
            *_not_null("transaction_id", "score", "month"),
            _month(),
            *_share("score", "threshold"),
            _after("score", "threshold"),
        ),
        (_customer(), _fk("transaction", "transaction_id", "silver.transactions")),
    ),
    Suite(
        "gold.customer_risk",
        (
            _unique("customer_key", "month"),
            *_not_null("customer_key", "month", "tier"),
            _month(),
            _in_set("tier", _TIERS),
            *_share("at_risk_probability"),
        ),
        (_customer(),),
    ),
    Suite(
        "gold.customer_propensity",
        (
            _unique("customer_key", "month", "product"),
            *_not_null("customer_key", "month", "product"),
            _month(),
            *_share("propensity"),
            _between("product_rank", 1, None),
        ),
        (_customer(), _fk("product", "product", "gold.dim_product")),
    ),
    Suite(
        "gold.campaign_targets",
        (
            _unique("month", "campaign", "product", "segment"),
            *_not_null("month", "campaign"),
            _month(),
            *_share("expected_response_rate"),
            *_non_negative("eligible_customers", "expected_responders"),
            _at_most("expected_responders", "eligible_customers"),
            _between("segment_rank", 1, None),
        ),
        (_fk("product", "product", "gold.dim_product"),),
    ),
)

ANALYTICS_SUITES: tuple[Suite, ...] = (
    Suite(
        "gold.kpi_model_monthly",
        (
            _unique("month"),
            *_not_null("month"),
            _month(),
            *_share("alert_precision", "alert_recall"),
            *_non_negative(
                "fraud_alert_count",
                "risk_high_customers",
                "risk_medium_customers",
                "risk_low_customers",
            ),
            _at_most("alerts_reported_fraud", "fraud_alert_count"),
        ),
    ),
    Suite(
        "gold.segment_monthly",
        (
            _unique("month", "segment"),
            *_not_null("month", "segment"),
            _month(),
            *_share(
                "share",
                "avg_atm_share",
                "avg_online_share",
                "avg_pos_share",
                "avg_transfer_share",
                "avg_invest_share",
                "avg_fx_share",
                "avg_cross_border_share",
                "avg_night_share",
            ),
            *_non_negative("customers", "stayed", "moved_in", "new", "moved_out"),
            _rule("customers_are_stayed_moved_in_new", "stayed + moved_in + new = customers"),
        ),
    ),
    Suite(
        "gold.customer_rfm",
        (
            _unique("customer_key", "month"),
            *_not_null("customer_key", "month"),
            _month(),
            *(_between(c, 1, 5) for c in ("r_score", "f_score", "m_score")),
            _rule("rfm_cell_is_scores", "rfm_cell = concat(r_score, f_score, m_score)"),
            *_non_negative("recency_days", "frequency_12m", "monetary_12m_usd"),
        ),
        (_customer(),),
    ),
    Suite(
        "gold.kpi_service_monthly",
        (
            _unique("month", "channel", "topic"),
            *_not_null("month", "channel", "topic"),
            _month(),
            *_share("resolved_share", "repeat_rate_7d", "complaint_rate"),
            *_non_negative("contacts", "customers"),
            _at_most("customers", "contacts"),
            _at_most("repeat_contacts_7d", "contacts"),
            _at_most("complaints", "contacts"),
            _at_most("resolution_hours_median", "resolution_hours_p90"),
        ),
    ),
    Suite(
        "gold.kpi_service_workload",
        (
            _unique("month", "weekday", "hour"),
            *_not_null("month", "weekday", "hour"),
            _month(),
            _between("weekday", 1, 7),
            _between("hour", 0, 23),
            _between("contacts", 0, None),
            _between("resolution_hours_total", 0, None),
        ),
    ),
    Suite(
        "gold.kpi_debt_monthly",
        (
            _unique("month", "breakdown", "value"),
            *_not_null("month", "breakdown", "value"),
            _month(),
            _in_set("breakdown", ("all", "type", "status", "age_band", "segment")),
            *_share("delinquency_rate", "delinquent_outstanding_share"),
            *_non_negative("debts", "debtors", "outstanding_usd"),
            _at_most("debtors", "debts"),
            _rule(
                "quantiles_ordered",
                "outstanding_p25 <= outstanding_median AND outstanding_median <= outstanding_p75"
                " AND outstanding_p75 <= outstanding_p90 AND outstanding_p90 <= outstanding_max",
            ),
        ),
    ),
    Suite(
        "gold.customer_360",
        (
            _unique("customer_key"),
            *_not_null("customer_key", "as_of_month"),
            _month("as_of_month"),
            _JOIN_AFTER_BIRTH,
            _in_set("risk_tier", _TIERS),
            *_share("disengagement_score"),
            *_non_negative("tx_count", "fraud_alerts_month", "contacts_3m", "clv_usd"),
        ),
        (_customer(),),
    ),
    Suite(
        "gold.customer_clv",
        (
            _unique("customer_key"),
            *_not_null("customer_key", "month"),
            _month(),
            *_share("prob_alive"),
            *_non_negative("expected_purchases", "expected_value_usd", "clv_usd"),
            _between("horizon_months", 1, None),
        ),
        (_customer(),),
    ),
    Suite(
        "gold.service_note_topics",
        (
            _unique("interaction_id"),
            *_not_null("interaction_id", "topic", "month"),
            _month(),
            *_share("topic_probability"),
            _between("sentiment_score", -1, 1),
            _in_set("sentiment", ("positive", "neutral", "negative")),
        ),
        (_fk("interaction", "interaction_id", "silver.interactions"),),
    ),
)

SUITES: tuple[Suite, ...] = (*SILVER_SUITES, *GOLD_SUITES, *MODEL_SUITES, *ANALYTICS_SUITES)
"""A suite for every silver and gold table the pipeline writes (tests/quality keeps it so)."""


def with_foreign_keys(
    df: DataFrame, keys: Sequence[ForeignKey], parent: Callable[[str], DataFrame]
) -> DataFrame:
    """``df`` with ``_fk_<name>``: the key is NULL, found in its parent, or not checked here."""
    out = df
    for fk in keys:
        found = f"_found_{fk.name}"
        parents = parent(fk.parent).select(F.col(fk.parent_column).alias(found)).dropDuplicates()
        resolves = F.col(fk.column).isNull() | F.col(found).isNotNull()
        if fk.where is not None:
            resolves = resolves | ~F.coalesce(F.expr(fk.where), F.lit(False))
        out = (
            out.join(parents, out[fk.column] == F.col(found), how="left")
            .withColumn(f"_fk_{fk.name}", resolves)
            .drop(found)
        )
    return out


def with_rules(df: DataFrame, rules: Sequence[Rule]) -> DataFrame:
    """``df`` with ``_rule_<name>``: each rule's condition, row by row."""
    return df.withColumns({rule.column: F.expr(rule.condition) for rule in rules})


def checked_columns(df: DataFrame, checks: Sequence[Check]) -> DataFrame:
    """``df`` with only the columns ``checks`` read, in ``df``'s order; all of them when a check
    is about the table's columns.

    Every layer check reads its own column(s) or counts rows, so its verdict and observed value
    are the same on the projection; the driver receives and GE filters a few columns instead of
    every one (GE's pandas engine copies the whole frame for each row filter it applies).
    """
    read: set[str] = set()
    for check in checks:
        if check.expectation.startswith("ExpectTableColumns"):
            return df
        for key in ("column", "column_A", "column_B"):
            if key in check.kwargs:
                read.add(str(check.kwargs[key]))
        read.update(str(c) for c in check.kwargs.get("column_list", ()))
    kept = [c for c in df.columns if c in read]
    return df.select(*kept) if kept else df  # no column at all could lose the row count


def docs_dir(cfg: Config) -> str | None:
    """``<lake>/_ops/data_docs`` where the lake is a local folder (GE writes files only)."""
    root = cfg.paths.lake_root
    return None if is_object_store(root) else os.path.join(local_path(root), "_ops", "data_docs")


def record(tables: Tables, outcomes: Sequence[ValidationOutcome], *, batch_prefix: str) -> None:
    """Appends the outcomes' rows to ``_ops.dq_results`` under one batch id."""
    batch = f"{batch_prefix}-{uuid.uuid4().hex[:8]}"
    rows = [{**row, "batch_id": batch} for outcome in outcomes for row in outcome.rows()]
    if rows:
        tables.append(DQ_RESULTS, tables.spark.createDataFrame(rows, DQ_SCHEMA))


def run_suites(
    tables: Tables,
    *,
    suites: Sequence[Suite] = SUITES,
    data_docs_dir: str | None = None,
    pandas_max_rows: int | None = DEFAULT_PANDAS_MAX_ROWS,
) -> list[ValidationOutcome]:
    """Validates every suite whose table exists; appends all results to ``_ops.dq_results``.

    A suite whose table or a foreign key's parent does not exist yet is skipped (a stage run
    alone, before the stages that write them).

    Returns:
        The outcomes; the caller decides whether a critical failure fails its job.
    """
    checker = validator(data_docs_dir=data_docs_dir, pandas_max_rows=pandas_max_rows)
    present = []
    for suite in suites:
        parents = [fk.parent for fk in suite.foreign_keys]
        if tables.exists(suite.table) and all(tables.exists(parent) for parent in parents):
            present.append(suite)
        else:
            log.info("%s: not validated (the table or a parent does not exist)", suite.table)

    def collected(suite: Suite) -> tuple[DataFrame, Collected]:
        expectations = suite.expectations()
        df = checked_columns(
            with_rules(
                with_foreign_keys(tables.read(suite.table), suite.foreign_keys, tables.read),
                suite.rules,
            ),
            expectations,
        )
        return df, checker.collect(df)

    outcomes = []
    try:
        # Spark computes the next suites' frames while GE checks this one on the driver.
        for suite, (df, ready) in prefetched(collected, present):
            outcomes.append(
                checker.validate(df, suite.table, suite.expectations(), collected=ready)
            )
    finally:
        checker.build_docs()
        record(tables, outcomes, batch_prefix="layers")
    return outcomes


def suites_for(names: Sequence[str]) -> list[Suite]:
    """The suites of ``names`` (``"gold.kpi_monthly"``), in the order given.

    Raises:
        KeyError: a table without a suite (every table a stage writes must have one).
    """
    by_table = {s.table: s for s in SUITES}
    missing = [n for n in names if n not in by_table]
    if missing:
        raise KeyError(f"no quality suite for {missing} (add one to cardlake.quality.layers)")
    return [by_table[n] for n in names]


def raise_on_critical(outcomes: Sequence[ValidationOutcome]) -> None:
    """Raises :class:`DataQualityError` naming every suite with a critical failure."""
    failed = [o for o in outcomes if not o.success]
    if failed:
        raise DataQualityError("; ".join(o.failure_message() for o in failed))
    warnings = sum(1 for o in outcomes for r in o.results if not r.success)
    if warnings:
        log.warning(
            "data quality: %d non-critical expectation(s) failed (see %s)", warnings, DQ_RESULTS
        )


def check_tables(tables: Tables, cfg: Config, names: Sequence[str]) -> list[ValidationOutcome]:
    """A stage's quality gate: validates the suites of the tables it wrote, records every
    result in ``_ops.dq_results`` and renders Data Docs, then fails on a critical failure.

    Args:
        tables: the lake.
        cfg: the run's configuration (where Data Docs go).
        names: the tables the stage writes (``"silver.customers"``); absent ones are skipped.

    Raises:
        DataQualityError: a critical expectation failed (exit code 1); the tables are written
            and the results recorded, so the run stops before later stages read them.
    """
    if not cfg.quality.stage_checks:
        log.info("quality.stage_checks is off: %d table(s) not validated", len(names))
        return []
    outcomes = run_suites(
        tables,
        suites=suites_for(names),
        data_docs_dir=docs_dir(cfg),
        pandas_max_rows=cfg.quality.pandas_max_rows,
    )
    raise_on_critical(outcomes)
    return outcomes
