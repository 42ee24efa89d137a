"""Source contracts (explicit schemas and rules per landing source) and ``conf/bronze.yaml``.

A contract says, for each feed of a source (``card_transactions`` has two: the card processor
CSV and the wallet JSON lines), how its records are parsed and which typed columns they become.
Every field is read as text first and then cast safely (``try_cast`` / ``try_to_timestamp``), so a
bad field sends its record to quarantine with a reason instead of failing the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from cardlake.config import PROJECT_ROOT, ConfigError, load_settings
from cardlake.quality.freshness import FreshnessConfig

BRONZE_CONF = PROJECT_ROOT / "conf" / "bronze.yaml"  # the shipped file
# Documented development key: used only where conf/bronze.yaml sets allow_dev_key for the env.
DEV_TOKEN_KEY = "cardlake-development-token-key-not-for-production"

Format = Literal["csv", "jsonl", "xml", "txt"]
Kind = Literal[
    "string", "date", "timestamp", "int", "long", "double", "decimal", "boolean", "month"
]
DATE_FMT = "yyyy-MM-dd"
TIMESTAMP_FMT = "yyyy-MM-dd'T'HH:mm:ss"


# ---------------------------------------------------------------------------- conf/bronze.yaml


@dataclass(frozen=True)
class ReferenceConfig:
    currencies: tuple[str, ...]
    countries: tuple[str, ...]
    max_amount: float


@dataclass(frozen=True)
class SourceConfig:
    on_new_column: Literal["evolve", "reject"] = "reject"


@dataclass(frozen=True)
class BronzeConfig:
    token_key_env: str
    allow_dev_key: bool
    min_corroboration: int
    reference: ReferenceConfig
    sources: Mapping[str, SourceConfig]
    data_docs: bool = True
    freshness: FreshnessConfig = field(default_factory=FreshnessConfig)
    sources_at_once: int = 2  # sources ingested at the same time, one thread each (1: in order)

    def __post_init__(self) -> None:
        # Run by the loader, which names the file: refusals read as "<file>: <message>".
        if self.sources_at_once < 1:
            raise ValueError(f"sources_at_once must be >= 1, got {self.sources_at_once}")
        if self.min_corroboration < 1:
            raise ValueError(f"min_corroboration must be >= 1, got {self.min_corroboration}")
        unknown = sorted(set(self.sources) - set(CONTRACTS))
        if unknown:
            raise ValueError(f"sources.{unknown[0]}: no such source (known: {sorted(CONTRACTS)})")
        missing = sorted(set(CONTRACTS) - set(self.sources))
        if missing:
            raise ValueError(f"sources: no settings for {missing}")
        daily = sorted(set(self.freshness.daily_sources) - set(CONTRACTS))
        if daily:
            raise ValueError(f"freshness.daily_sources: no such source {daily[0]!r}")

    def token_key(self, env: str) -> bytes:
        """The card-token key from the environment; the dev key only where allowed."""
        from cardlake.bronze.tokenise import check_token_key

        value = os.environ.get(self.token_key_env)
        if value:  # refused if short, or the public dev key outside local/test (never printed)
            return check_token_key(value.encode(), env=env, dev_key=DEV_TOKEN_KEY.encode())
        if self.allow_dev_key:
            return DEV_TOKEN_KEY.encode()
        raise ConfigError(
            f"{BRONZE_CONF}: env {env!r}: the card-token key is not set: export "
            f"{self.token_key_env} (allow_dev_key is false for this environment)"
        )


def load_bronze_config(env: str | None = None, path: Path | None = None) -> BronzeConfig:
    """Loads ``bronze.yaml`` with the ``bronze:`` section of ``<env>.yaml`` over it.

    A thin wrapper over :func:`cardlake.config.load_settings`; the harness loads it once.

    Raises:
        ConfigError: unknown or missing keys, wrong types, a source without a contract; the
            message names the key and the file.
    """
    return load_settings(BronzeConfig, "bronze", env=env, file=path)


# ---------------------------------------------------------------------------- contracts


@dataclass(frozen=True)
class Field:
    """A flat field: read as text, cast to ``kind``; ``fmt`` for dates and timestamps."""

    name: str
    kind: Kind = "string"
    fmt: str | None = None
    required: bool = False
    check: Literal["currency", "country", "amount", "non_negative", "positive"] | None = None


@dataclass(frozen=True)
class Feed:
    """One file family of a source.

    Attributes:
        prefix: file names start with it (``card_tx_``).
        format: how records are framed and parsed.
        fields: the flat typed fields, in output order (for ``jsonl`` with ``json_schema``: the
            flat fields checked on top of the nested document).
        header_lines: lines before the first record (CSV: the header, used for drift checks).
        footer: a closing line that is structure, not a record (XML's root end tag).
        json_schema: the explicit parse schema of a JSON document (nested sources).
        pattern: TXT: the line pattern, one group per field in ``fields`` order.
        paths: XML: field name -> path in the parsed element (``name.given``).
    """

    prefix: str
    format: Format
    fields: tuple[Field, ...]
    header_lines: int = 0
    footer: str | None = None
    json_schema: StructType | None = None
    pattern: str | None = None
    paths: Mapping[str, str] = field(default_factory=dict)
    xml_schema: StructType | None = None
    nested: bool = False  # JSON: keep the whole parsed document, not only ``fields``


@dataclass(frozen=True)
class Reference:
    """``column`` must name a record of another bronze table (``table``.``ref_column``)."""

    column: str
    table: str
    ref_expr: str  # SQL expression over the referenced table giving the key (may be an array)
    corroborate: bool = True  # an unknown key seen often enough is real (see min_corroboration)
    quarantine_pattern: str | None = None  # keys of quarantined referenced records count too


@dataclass(frozen=True)
class SourceContract:
    name: str
    key: tuple[str, ...]
    feeds: tuple[Feed, ...]
    references: tuple[Reference, ...] = ()
    card_column: str | None = None  # clear card number column: tokenised, never stored

    @property
    def table(self) -> str:
        return f"bronze.{self.name}"

    @property
    def quarantine_table(self) -> str:
        return f"_quarantine.{self.name}"

    def feed_for(self, file_name: str) -> Feed | None:
        return next((f for f in self.feeds if file_name.startswith(f.prefix)), None)


def _s(*names: str) -> tuple[Field, ...]:
    return tuple(Field(n) for n in names)


def _d(name: str, fmt: str = DATE_FMT, **kw: Any) -> Field:
    return Field(name, "date", fmt, **kw)


def _t(name: str, **kw: Any) -> Field:
    return Field(name, "timestamp", TIMESTAMP_FMT, **kw)


def _struct(*items: tuple[str, Any]) -> StructType:
    return StructType([StructField(n, t) for n, t in items])


_STR = StringType()
# Nested JSON is parsed with an explicit schema; numbers are parsed as numbers (a string where a
# number belongs makes the document a type mismatch) and dates as text, checked afterwards.
FINANCIAL_SCHEMA = _struct(
    ("fin_id", _STR),
    ("crm_ref", _STR),
    # national_id (KYC) is kept as delivered, however written; a document from before it has
    # none (null). Silver checks its format (cardlake.silver.customers.normalised_national_id).
    (
        "holder",
        _struct(
            ("name", _STR),
            ("date_of_birth", _STR),
            ("email", _STR),
            ("phone", _STR),
            ("national_id", _STR),
        ),
    ),
    ("address", _struct(("street", _STR), ("city", _STR), ("postcode", _STR), ("country", _STR))),
    ("plan_type", _STR),
    (
        "accounts",
        ArrayType(
            _struct(
                ("account_id", _STR),
                ("type", _STR),
                ("currency", _STR),
                ("opened", _STR),
                ("balance", DoubleType()),
            )
        ),
    ),
    (
        "cards",
        ArrayType(
            _struct(
                ("card_id", _STR),
                ("network", _STR),
                ("type", _STR),
                ("last4", _STR),
                ("issued", _STR),
                ("status", _STR),
            )
        ),
    ),
    ("payment_methods", ArrayType(_struct(("type", _STR), ("provider", _STR), ("added", _STR)))),
    ("credit_score", _struct(("score", LongType()), ("bureau", _STR), ("as_of", _STR))),
    (
        "debts",
        ArrayType(
            _struct(
                ("debt_id", _STR),
                ("type", _STR),
                ("principal", DoubleType()),
                ("outstanding", DoubleType()),
                ("interest_rate", DoubleType()),
                ("status", _STR),
                ("opened", _STR),
            )
        ),
    ),
    ("updated_at", _STR),
)
WALLET_SCHEMA = _struct(
    ("transaction_id", _STR),
    ("wallet_id", _STR),
    ("timestamp", _STR),
    ("amount", _STR),
    ("currency", _STR),
    ("channel", _STR),
    ("direction", _STR),
    ("state", _STR),
    ("counterparty_wallet", _STR),
    ("device", _struct(("id", _STR), ("ip_country", _STR))),
)
DEMOGRAPHICS_SCHEMA = _struct(
    ("_id", _STR),
    ("name", _struct(("given", _STR), ("family", _STR))),
    ("birth_date", _STR),
    ("gender", _STR),
    ("marital_status", _STR),
    ("education", _STR),
    ("occupation", _STR),
    ("income_bracket", _STR),
    ("address", _struct(("street", _STR), ("city", _STR), ("postcode", _STR), ("country", _STR))),
    ("phone", _STR),
    ("crm_ref", _STR),
)
SERVICE_PATTERN = (
    r"^([^|]*?) \| (INT-\d+) \| ref=([^|]*?) \| channel=(\w+) \| type=(\w+) \| "
    r"opened=([^|]*?) \| resolved=([^|]*?) \| note=\"([^\"]*)\"$"
)

CARD_TX_FIELDS = (
    Field("transaction_id", required=True),
    Field("card_id", required=True),
    _t("timestamp"),
    Field("amount", "decimal", check="amount"),
    Field("currency", check="currency"),
    *_s("merchant_id", "mcc"),
    Field("merchant_country", check="country"),
    *_s("channel", "direction", "state", "device_id", "ip_country"),
)
WALLET_TX_FIELDS = (
    Field("transaction_id", required=True),
    Field("wallet_id", required=True),
    _t("timestamp"),
    Field("amount", "decimal", check="amount"),
    Field("currency", check="currency"),
    *_s("channel", "direction", "state", "counterparty_wallet", "device_id", "ip_country"),
)

CONTRACTS: dict[str, SourceContract] = {
    c.name: c
    for c in (
        SourceContract(
            "crm_customers",
            ("crm_id",),
            (
                Feed(
                    "crm_customers_",
                    "csv",
                    (
                        Field("crm_id", required=True),
                        *_s("first_name", "last_name"),
                        _d("date_of_birth"),
                        *_s("email", "phone", "street", "city", "postcode"),
                        Field("country", check="country"),
                        *_s("plan_type", "status"),
                        _d("join_date"),
                        *_s("wallet_id", "device_os", "device_id", "fin_ref"),
                        _t("updated_at"),
                    ),
                    header_lines=1,
                ),
            ),
        ),
        SourceContract(
            "financial_records",
            ("fin_id",),
            (
                Feed(
                    "financial_records_",
                    "jsonl",
                    (Field("fin_id", required=True), _t("updated_at")),
                    json_schema=FINANCIAL_SCHEMA,
                    nested=True,
                ),
            ),
            card_column="cards",
        ),
        SourceContract(
            "demographics",
            ("demo_id",),
            (
                Feed(
                    "demographics_",
                    "xml",
                    (
                        Field("demo_id", required=True),
                        *_s("given_name", "family_name"),
                        _d("birth_date", "dd/MM/yyyy"),
                        *_s(
                            "gender",
                            "marital_status",
                            "education",
                            "occupation",
                            "income_bracket",
                            "street",
                            "city",
                            "postcode",
                        ),
                        Field("country", check="country"),
                        *_s("phone", "crm_ref"),
                    ),
                    header_lines=2,
                    footer="</demographics>",
                    xml_schema=DEMOGRAPHICS_SCHEMA,
                    paths={
                        "demo_id": "_id",
                        "given_name": "name.given",
                        "family_name": "name.family",
                        "street": "address.street",
                        "city": "address.city",
                        "postcode": "address.postcode",
                        "country": "address.country",
                    },
                ),
            ),
        ),
        SourceContract(
            "service_interactions",
            ("interaction_id",),
            (
                Feed(
                    "service_",
                    "txt",
                    (
                        _t("logged_at"),
                        Field("interaction_id", required=True),
                        *_s("ref", "channel", "interaction_type"),
                        _t("opened_at"),
                        _t("resolved_at"),
                        Field("note"),
                    ),
                    pattern=SERVICE_PATTERN,
                ),
            ),
        ),
        SourceContract(
            "product_usage",
            ("usage_id",),
            (
                Feed(
                    "product_usage_",
                    "csv",
                    (
                        Field("usage_id", required=True),
                        *_s("app_user_id", "email", "crm_id"),
                        Field("month", "month"),
                        Field("product"),
                        Field("sessions", "int", check="positive"),
                        Field("minutes", "double", check="non_negative"),
                        _d("last_seen"),
                        *_s("device_id", "device_os", "app_version"),
                    ),
                    header_lines=1,
                ),
            ),
        ),
        SourceContract(
            "card_transactions",
            ("transaction_id",),
            (
                Feed("card_tx_", "csv", CARD_TX_FIELDS, header_lines=1),
                Feed(
                    "wallet_tx_",
                    "jsonl",
                    WALLET_TX_FIELDS,
                    json_schema=WALLET_SCHEMA,
                    paths={"device_id": "device.id", "ip_country": "device.ip_country"},
                ),
            ),
            references=(
                Reference(
                    "card_token",
                    "bronze.financial_records",
                    "explode(transform(cards, c -> c.card_token))",
                ),
                Reference("wallet_id", "bronze.crm_customers", "wallet_id"),
            ),
            card_column="card_id",
        ),
        SourceContract(
            "marketing_monthly",
            ("contact_id", "month"),
            (
                Feed(
                    "marketing_",
                    "csv",
                    (
                        Field("contact_id", required=True),
                        *_s("crm_id", "email"),
                        Field("month", "month"),
                        Field("plan_type"),
                        Field("plan_changed", "boolean"),
                        Field("device_changed", "boolean"),
                        Field("notifications_sent", "int"),
                        Field("notifications_failed", "int"),
                        Field("notifications_opened", "int"),
                        Field("campaign"),
                        Field("opted_in", "boolean"),
                        _d("extracted_on"),
                    ),
                    header_lines=1,
                ),
            ),
        ),
        SourceContract(
            "chargebacks",
            ("report_id",),
            (
                Feed(
                    "chargebacks_",
                    "csv",
                    (
                        Field("report_id", required=True),
                        Field("transaction_id", required=True),
                        Field("instrument_id", required=True),
                        _t("reported_at"),
                        Field("reason_code"),
                        Field("amount", "decimal", check="amount"),
                        Field("currency", check="currency"),
                    ),
                    header_lines=1,
                ),
            ),
            references=(
                Reference(
                    "transaction_id",
                    "bronze.card_transactions",
                    "transaction_id",
                    corroborate=False,
                    quarantine_pattern=r"(TX\d{14})",
                ),
            ),
            card_column="instrument_id",
        ),
        SourceContract(
            "merchants",
            ("merchant_id",),
            (
                Feed(
                    "merchants_",
                    "csv",
                    (
                        Field("merchant_id", required=True),
                        *_s("name", "mcc", "category"),
                        Field("country", check="country"),
                        Field("city"),
                        Field("online", "boolean"),
                        _d("opened_on"),
                    ),
                    header_lines=1,
                ),
            ),
        ),
        SourceContract(
            "fx_rates",
            ("date", "currency"),
            (
                Feed(
                    "fx_rates_",
                    "csv",
                    (
                        _d("date", required=True),
                        Field("currency", required=True, check="currency"),
                        Field("units_per_usd", "double", check="positive"),
                    ),
                    header_lines=1,
                ),
            ),
        ),
    )
}

# Ingest order: a source's references are ingested before it. With sources_at_once > 1 the
# threads take sources in this order and a source starts once the sources it references are
# done: card_transactions (half of bronze) as early as its references allow, the small sources
# beside it, and chargebacks, which waits for it, last.
INGEST_ORDER = (
    "crm_customers",
    "financial_records",
    "card_transactions",
    "merchants",
    "fx_rates",
    "demographics",
    "service_interactions",
    "product_usage",
    "marketing_monthly",
    "chargebacks",
)
