"""The landing-zone contract: source names, formats, file names and record keys.

Bronze imports :data:`SOURCES` so the list of sources lives in one place. Files land at
``<landing_root>/<source>/<YYYY-MM>/<file>`` where the folder is the delivery month.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceSpec:
    """How one department delivers its data."""

    name: str
    formats: tuple[str, ...]
    file_patterns: tuple[str, ...]
    record_key: str
    header_lines: int
    description: str


SOURCES: dict[str, SourceSpec] = {
    s.name: s
    for s in (
        SourceSpec(
            "crm_customers",
            ("csv",),
            ("crm_customers_{month}.csv",),
            "crm_id",
            1,
            "CRM customer profiles; a new row each time a customer joins or changes",
        ),
        SourceSpec(
            "financial_records",
            ("jsonl",),
            ("financial_records_{month}.jsonl",),
            "fin_id",
            0,
            "core-banking records: accounts, cards, payment methods, credit score, debts",
        ),
        SourceSpec(
            "demographics",
            ("xml",),
            ("demographics_{month}.xml",),
            "demo_id",
            2,
            "demographics survey export, one <person> element per line",
        ),
        SourceSpec(
            "service_interactions",
            ("txt",),
            ("service_{month}.log",),
            "interaction_id",
            0,
            "customer-service log lines with a free-text note",
        ),
        SourceSpec(
            "product_usage",
            ("csv",),
            ("product_usage_{month}.csv",),
            "usage_id",
            1,
            "mobile-app product usage per app user, product and month",
        ),
        SourceSpec(
            "card_transactions",
            ("csv", "jsonl"),
            ("card_tx_{date}.csv", "wallet_tx_{date}.jsonl"),
            "transaction_id",
            1,
            "daily batches: card processor CSV and wallet JSON lines (CSV has a header)",
        ),
        SourceSpec(
            "marketing_monthly",
            ("csv",),
            ("marketing_{month}.csv",),
            "contact_id",
            1,
            "monthly CRM/marketing summary per contact",
        ),
        SourceSpec(
            "chargebacks",
            ("csv",),
            ("chargebacks_{month}.csv",),
            "report_id",
            1,
            "fraud and chargeback reports, delivered in the month they are reported",
        ),
        SourceSpec(
            "merchants",
            ("csv",),
            ("merchants_{month}.csv",),
            "merchant_id",
            1,
            "reference: merchants opened up to the end of the month (new ones each month)",
        ),
        SourceSpec(
            "fx_rates",
            ("csv",),
            ("fx_rates_{month}.csv",),
            "date,currency",
            1,
            "reference: daily FX rates, units of currency per 1 USD",
        ),
    )
}

EVENTS_DIR = "events"
"""Stream mode writes ``<landing_root>/events/<batch>.jsonl`` files."""

REDELIVERY_SUFFIX = "_redelivery"
"""An exact re-delivered copy of ``name.ext`` is ``name_redelivery.ext`` in the same folder."""

# Field formats the landing contract promises (bad records break exactly these).
DATE_FORMAT = "%Y-%m-%d"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"
DEMOGRAPHICS_DATE_FORMAT = "%d/%m/%Y"
MAX_VALID_AMOUNT = 1_000_000.0
SERVICE_LINE_PATTERN = (
    r"^(?P<logged_at>\S+) \| (?P<interaction_id>INT-\d+) \| ref=(?P<ref>[^|]*?) \| "
    r"channel=(?P<channel>\w+) \| type=(?P<type>\w+) \| opened=(?P<opened>\S+) \| "
    r'resolved=(?P<resolved>\S*) \| note="(?P<note>[^"]*)"$'
)
"""Regex of one ``service_interactions`` log line (Python ``re`` syntax)."""
