"""Parameters of the synthetic world and of its landing files.

Every field has a default so ``SynthParams()`` is the small local scale. The config layer builds
``SynthParams(**cfg["synth"])``, so field names are a public contract: rename with care.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from cardlake.months import is_month, month_range

MIN_MONTHS = 18


@dataclass(frozen=True)
class SynthParams:
    """Knobs of the generator; the same values and seed give byte-identical output.

    Rates are probabilities per record (or per file for re-deliveries, per person for
    person-level traits, per person-month for events).
    """

    seed: int = 20240101
    n_customers: int = 2000
    start_month: str = "2024-01"
    n_months: int = 18
    # Share of customers already on the books before start_month (delivered in the first drop).
    existing_customer_share: float = 0.65
    # Mean card + wallet transactions per fully engaged customer-month, before archetype scaling.
    tx_per_customer_month: float = 8.0
    n_merchants: int = 600

    # Identity noise on profile-like records.
    name_typo_rate: float = 0.05
    nickname_rate: float = 0.08
    name_swap_rate: float = 0.03
    case_whitespace_rate: float = 0.10
    email_variant_rate: float = 0.10
    phone_format_variation_rate: float = 0.50
    address_abbreviation_rate: float = 0.30
    missing_field_rate: float = 0.04
    # Person-level traits.
    shared_household_rate: float = 0.08
    duplicate_identity_rate: float = 0.03
    debt_rate: float = 0.15
    # Cross-references between sources, present only sometimes.
    crossref_rate: float = 0.5

    # Monthly events per customer.
    move_rate: float = 0.006
    plan_change_rate: float = 0.02
    device_change_rate: float = 0.03
    # Devices are opaque tokens: of households, this share uses one device between them; of
    # duplicate sign-ups, this share comes from another device than the person's first profile.
    household_device_share_rate: float = 0.3
    signup_device_change_rate: float = 0.3
    churn_rate: float = 0.012
    service_contact_rate: float = 0.12

    # Delivery defects.
    bad_record_rate: float = 0.01
    duplicate_record_rate: float = 0.005
    redelivery_rate: float = 0.03

    # Fraud.
    base_fraud_logit: float = -7.0
    card_testing_rate: float = 0.0015
    account_takeover_rate: float = 0.001
    compromised_merchant_rate: float = 0.01
    chargeback_report_rate: float = 0.85
    max_report_delay_days: int = 45

    def __post_init__(self) -> None:
        if not is_month(self.start_month):
            raise ValueError(f"start_month must be YYYY-MM, got {self.start_month!r}")
        if self.n_months < MIN_MONTHS:
            raise ValueError(f"n_months must be >= {MIN_MONTHS}, got {self.n_months}")
        if self.n_customers < 10:
            raise ValueError(f"n_customers must be >= 10, got {self.n_customers}")
        if not 0 < self.max_report_delay_days <= 58:
            raise ValueError("max_report_delay_days must be in 1..58 (reports land in 2 months)")
        for f in fields(self):
            if f.name.endswith(("_rate", "_share")):
                value = getattr(self, f.name)
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{f.name} must be in [0, 1], got {value}")

    def months(self) -> list[str]:
        """All months of the history, oldest first, as ``YYYY-MM``."""
        return month_range(self.start_month, self.n_months)
