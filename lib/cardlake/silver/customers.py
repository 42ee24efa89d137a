"""The single customer view: person records from every department, resolved into customers.

1. ``person_records``: each person-bearing bronze table in the matcher's shape, with the
   source's own key and every cross-reference it carries as ``xref_keys``.
2. The matcher (:mod:`cardlake.er`) links them (deterministic pass on strong identifiers and
   cross-references, then Fellegi-Sunter with Splink) and clusters the links.
3. :mod:`cardlake.silver.keys` gives each cluster a stable ``customer_key``.
4. Survivorship builds one golden record per customer, as of each month end, with per-attribute
   lineage: each attribute has a rule (most trusted source, most recent, most complete).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from cardlake.er import standardise as S
from cardlake.months import month_index
from cardlake.silver.activity import latest_delivery
from cardlake.silver.schemas import CUSTOMER_SNAPSHOTS, CUSTOMERS
from cardlake.synth import national_id as N

# Person-bearing sources and how their columns map to the matcher's roles.
PERSON_SOURCES = (
    "crm_customers",
    "financial_records",
    "demographics",
    "product_usage",
    "marketing_monthly",
)
SOURCE_KEY = {
    "crm_customers": "crm_id",
    "financial_records": "fin_id",
    "demographics": "demo_id",
    "product_usage": "app_user_id",
    "marketing_monthly": "contact_id",
}
# A golden record rests on a customer source: the bank's own records of a person (CRM, core
# banking, the survey of its customers). Product usage and marketing rows are activity: an entity
# made of them alone (an app user whose rows carry neither an e-mail nor a CRM id) is held back,
# not made a customer (cardlake.silver.resolution, silver.unresolved_activity).
CUSTOMER_SOURCES = ("crm_customers", "financial_records", "demographics")
ACTIVITY_SOURCES = ("product_usage", "marketing_monthly")
# Lower is more trusted, per attribute family (CRM owns identity, core banking owns finance,
# the survey owns demographics).
TRUST = {
    "crm_customers": 0,
    "financial_records": 1,
    "demographics": 2,
    "product_usage": 3,
    "marketing_monthly": 4,
}


def _text(col: str | Column) -> Column:
    column = F.col(col) if isinstance(col, str) else col
    return F.nullif(F.trim(column.cast("string")), F.lit(""))


# The landing contract's national id, however a clerk wrote it: case, spaces, dashes aside.
NATIONAL_ID_SHAPE = rf"^{N.PREFIX}([A-Z]{{2}})([0-9]{{{N.DIGITS}}})([{N.CHECK_LETTERS}])$"
_NATIONAL_ID_BODY = 2 + N.DIGITS  # country and digits: the characters the check letter weighs


def normalised_national_id(col: Column) -> Column:
    """``SYN-GB-482193750-Y`` from any spelling of it; NULL unless it has the synthetic format
    and its check letter (:mod:`cardlake.synth.national_id`) is right."""
    compact = F.regexp_replace(F.upper(col), r"[^A-Z0-9]", "")
    country = F.regexp_extract(compact, NATIONAL_ID_SHAPE, 1)
    digits = F.regexp_extract(compact, NATIONAL_ID_SHAPE, 2)
    letter = F.regexp_extract(compact, NATIONAL_ID_SHAPE, 3)
    body = F.concat(country, digits)

    def weighted(total: Column, i: Column) -> Column:
        ch = body.substr(i, F.lit(1))
        value = F.ascii(ch) - F.when(ch.rlike("[0-9]"), F.ascii(F.lit("0"))).otherwise(
            F.ascii(F.lit("A")) - 10
        )
        return total + i * value

    total = F.aggregate(F.sequence(F.lit(1), F.lit(_NATIONAL_ID_BODY)), F.lit(0), weighted)
    expected = F.lit(N.CHECK_LETTERS).substr(
        F.pmod(total, F.lit(len(N.CHECK_LETTERS))) + 1, F.lit(1)
    )
    return F.when(
        compact.rlike(NATIONAL_ID_SHAPE) & (letter == expected),
        F.concat_ws("-", F.lit(N.PREFIX), country, digits, letter),
    )


def _holder_national_id(fin: DataFrame) -> Column:
    # A bronze table from before national ids has a holder without one.
    holder = fin.schema["holder"].dataType
    has_it = isinstance(holder, StructType) and "national_id" in holder.fieldNames()
    return F.col("holder.national_id") if has_it else F.lit(None).cast("string")


def person_inputs(bronze: dict[str, DataFrame]) -> dict[str, tuple[DataFrame, dict[str, str]]]:
    """Each person-bearing bronze table as (one row per record, role mapping).

    Records with several deliveries (a customer who moved) contribute every delivery: each is
    evidence for matching, and all share the source key through ``xref_keys``.
    """
    out: dict[str, tuple[DataFrame, dict[str, str]]] = {}
    if "crm_customers" in bronze:
        crm = bronze["crm_customers"].select(
            F.col("crm_id").alias("_key"),
            _text("first_name").alias("given"),
            _text("last_name").alias("family"),
            _text("date_of_birth").alias("dob"),
            _text("email").alias("email"),
            _text("phone").alias("phone"),
            _text("street").alias("street"),
            _text("city").alias("city"),
            _text("postcode").alias("postcode"),
            _text("country").alias("country"),
            # Not the app's device id: household members share devices and people change them,
            # so a device is evidence for the matcher at most, never a deterministic link.
            F.concat_ws(" ", "crm_id", "fin_ref").alias("xref"),
        )
        out["crm_customers"] = (_identity_records(crm), _roles(full_name=False))
    if "financial_records" in bronze:
        fin = bronze["financial_records"].select(
            F.col("fin_id").alias("_key"),
            _text("holder.name").alias("full"),
            _text("holder.date_of_birth").alias("dob"),
            _text("holder.email").alias("email"),
            _text("holder.phone").alias("phone"),
            _text("address.street").alias("street"),
            _text("address.city").alias("city"),
            _text("address.postcode").alias("postcode"),
            _text("address.country").alias("country"),
            F.concat_ws(" ", "fin_id", "crm_ref").alias("xref"),
        )
        out["financial_records"] = (_identity_records(fin), _roles(full_name=True))
    if "demographics" in bronze:
        demo = bronze["demographics"].select(
            F.col("demo_id").alias("_key"),
            _text("given_name").alias("given"),
            _text("family_name").alias("family"),
            _text("birth_date").alias("dob"),
            F.lit(None).cast("string").alias("email"),
            _text("phone").alias("phone"),
            _text("street").alias("street"),
            _text("city").alias("city"),
            _text("postcode").alias("postcode"),
            _text("country").alias("country"),
            F.concat_ws(" ", "demo_id", "crm_ref").alias("xref"),
        )
        out["demographics"] = (_identity_records(demo), _roles(full_name=False))
    for source in ("product_usage", "marketing_monthly"):
        if source not in bronze:
            continue
        key = SOURCE_KEY[source]
        feed = bronze[source]
        refs = [key, "crm_id"]  # no device id: shared in households (see the CRM records)
        # Every key the contact was ever delivered with: the feeds leave a cross-reference out
        # in some months, and a record that flipped with them would look new every month.
        seen = feed.groupBy(key).agg(
            F.array_sort(
                F.array_distinct(
                    F.flatten(F.collect_list(F.array_compact(F.array(*[_text(c) for c in refs]))))
                )
            ).alias("_refs")
        )
        # The newest e-mail the feed gave (a delivery with the field missing changes nothing).
        emails = latest_delivery(feed.where(_text("email").isNotNull()), keys=[key]).select(
            key, "email"
        )
        latest = seen.join(emails, on=key, how="left")
        contact = latest.select(
            F.col(key).alias("_key"),
            F.lit(None).cast("string").alias("given"),
            F.lit(None).cast("string").alias("family"),
            F.lit(None).cast("string").alias("dob"),
            _text("email").alias("email"),
            F.lit(None).cast("string").alias("phone"),
            F.lit(None).cast("string").alias("street"),
            F.lit(None).cast("string").alias("city"),
            F.lit(None).cast("string").alias("postcode"),
            F.lit(None).cast("string").alias("country"),
            F.array_join("_refs", " ").alias("xref"),
        )
        out[source] = (_identity_records(contact), _roles(full_name=False))
    return out


def _identity_records(df: DataFrame) -> DataFrame:
    """Drops deliveries that repeat a known record of a source key word for word.

    ``rid`` is the source key for now; :func:`cardlake.silver.resolution.person_records`
    makes it ``key~identity`` once the values are standardised.
    """
    matched = [c for c in df.columns if c != "_key"]
    return df.select(F.col("_key").alias("rid"), *matched).dropDuplicates(["rid", *matched])


def _roles(*, full_name: bool) -> dict[str, str]:
    roles = {
        "record_id": "rid",
        "date_of_birth": "dob",
        "email": "email",
        "phone": "phone",
        "address_1": "street",
        "city": "city",
        "postcode": "postcode",
        "country": "country",
        "xref_keys": "xref",
    }
    if full_name:
        roles["full_name"] = "full"
    else:
        roles["given_name"], roles["surname"] = "given", "family"
    return roles


def source_record_id(record_id: Column) -> Column:
    """The source's own key from a person-record id (``CRM-0000012~<hash>`` → ``CRM-0000012``)."""
    return F.substring_index(record_id, "~", 1)


# ------------------------------------------------------------------------------ survivorship


@dataclass(frozen=True)
class Rule:
    """How one golden attribute is chosen among a customer's candidate values."""

    attribute: str
    sources: Sequence[str]
    order: str  # "trust": most trusted source first, then newest; "recent": newest first


RULES: tuple[Rule, ...] = (
    Rule("first_name", ("crm_customers", "financial_records", "demographics"), "trust"),
    Rule("last_name", ("crm_customers", "financial_records", "demographics"), "trust"),
    Rule("date_of_birth", ("crm_customers", "financial_records", "demographics"), "trust"),
    # KYC: only core banking holds it. Not given to the matcher (cardlake.er has a national_id
    # role, left unmapped in person_inputs): the synthetic id is exact and unique, a key real
    # deliveries seldom give so cleanly, and it would flatter the resolution figures.
    Rule("national_id", ("financial_records",), "recent"),
    Rule("gender", ("demographics",), "recent"),
    Rule("marital_status", ("demographics",), "recent"),
    Rule("education", ("demographics",), "recent"),
    Rule("occupation", ("demographics",), "recent"),
    Rule("income_bracket", ("demographics",), "recent"),
    Rule(
        "email",
        ("crm_customers", "financial_records", "marketing_monthly", "product_usage"),
        "trust",
    ),
    Rule("phone", ("crm_customers", "financial_records", "demographics"), "trust"),
    Rule("address", ("crm_customers", "financial_records", "demographics"), "recent"),
    Rule("plan_type", ("crm_customers", "financial_records"), "recent"),
    Rule("status", ("crm_customers",), "recent"),
    Rule("device", ("crm_customers",), "recent"),
    Rule("credit", ("financial_records",), "recent"),
)


def candidates(bronze: dict[str, DataFrame], crosswalk_df: DataFrame) -> DataFrame:
    """Every attribute value each source offers for each customer, with its delivery time.

    Returns ``(customer_key, attribute, value, source, record_id, trust, seen_month, seen_at)``;
    ``value`` is a struct per attribute family so that, e.g., an address is chosen whole.
    """
    key_of = crosswalk_df.filter("is_current").select("source", "source_record_id", "customer_key")
    rows: list[DataFrame] = []

    def add(
        source: str, df: DataFrame, key: str, attributes: dict[str, Column], seen_at: Column
    ) -> None:
        keyed = df.join(
            key_of.filter(F.col("source") == source).select(
                F.col("source_record_id").alias(key), "customer_key"
            ),
            on=key,
            how="inner",
        )
        # One row per record holding every attribute, then one row per attribute: one scan and
        # one join per source (a select per attribute planned a scan and a join each, ~30).
        offered = F.array(
            *[
                F.struct(F.lit(attribute).alias("attribute"), F.to_json(value).alias("value"))
                for attribute, value in attributes.items()
            ]
        )
        per_record = keyed.select(
            "customer_key",
            offered.alias("_offered"),
            F.lit(source).alias("source"),
            F.col(key).alias("record_id"),
            F.lit(TRUST[source]).alias("trust"),
            F.col("ingest_month").alias("seen_month"),
            seen_at.alias("seen_at"),
        )
        rows.append(
            per_record.select("customer_key", F.inline("_offered"), *per_record.columns[2:])
        )

    def tidy_name(col: Column) -> Column:
        return F.initcap(F.lower(F.regexp_replace(F.trim(col), r"\s+", " ")))

    def address(street: str, city: str, postcode: str, country: str) -> Column:
        return F.struct(
            _text(street).alias("street"),
            F.initcap(F.lower(_text(city))).alias("city"),
            F.upper(_text(postcode)).alias("postcode"),
            S.iso_country(_text(country)).alias("country"),
        )

    if "crm_customers" in bronze:
        crm = bronze["crm_customers"]
        add(
            "crm_customers",
            crm,
            "crm_id",
            {
                "first_name": F.struct(tidy_name(F.col("first_name")).alias("v")),
                "last_name": F.struct(tidy_name(F.col("last_name")).alias("v")),
                "date_of_birth": F.struct(F.col("date_of_birth").cast("string").alias("v")),
                "email": F.struct(S.normalised_email(F.col("email")).alias("v")),
                "phone": F.struct(
                    S.e164_phone(F.col("phone"), S.iso_country(F.col("country"))).alias("v")
                ),
                "address": address("street", "city", "postcode", "country"),
                "plan_type": F.struct(F.lower(_text("plan_type")).alias("v")),
                "status": F.struct(
                    F.lower(_text("status")).alias("v"),
                    F.col("join_date").cast("string").alias("join_date"),
                    F.col("ingest_month").alias("month"),
                ),
                "device": F.struct(_text("device_os").alias("os"), _text("device_id").alias("id")),
            },
            F.col("updated_at"),
        )
    if "financial_records" in bronze:
        fin = bronze["financial_records"]
        debts = F.filter("debts", lambda d: d["outstanding"] > 0)
        add(
            "financial_records",
            fin,
            "fin_id",
            {
                "first_name": F.struct(
                    tidy_name(
                        F.regexp_extract(F.col("holder.name"), r"^(?:[^,]+,\s*)?(\S+)", 1)
                    ).alias("v")
                ),
                "date_of_birth": F.struct(_text("holder.date_of_birth").alias("v")),
                "national_id": F.struct(
                    normalised_national_id(_holder_national_id(fin)).alias("v")
                ),
                "email": F.struct(S.normalised_email(F.col("holder.email")).alias("v")),
                "phone": F.struct(
                    S.e164_phone(
                        F.col("holder.phone"), S.iso_country(F.col("address.country"))
                    ).alias("v")
                ),
                "address": address(
                    "address.street", "address.city", "address.postcode", "address.country"
                ),
                "plan_type": F.struct(F.lower(_text("plan_type")).alias("v")),
                "credit": F.struct(
                    F.col("credit_score.score").cast("int").alias("score"),
                    (F.size(debts) > 0).alias("has_debt"),
                    F.aggregate(debts, F.lit(0.0), lambda acc, d: acc + d["outstanding"]).alias(
                        "outstanding"
                    ),
                ),
            },
            F.col("updated_at"),
        )
    if "demographics" in bronze:
        demo = bronze["demographics"]
        add(
            "demographics",
            demo,
            "demo_id",
            {
                "first_name": F.struct(tidy_name(F.col("given_name")).alias("v")),
                "last_name": F.struct(tidy_name(F.col("family_name")).alias("v")),
                "date_of_birth": F.struct(F.col("birth_date").cast("string").alias("v")),
                "gender": F.struct(F.upper(_text("gender")).alias("v")),
                "marital_status": F.struct(F.lower(_text("marital_status")).alias("v")),
                "education": F.struct(F.lower(_text("education")).alias("v")),
                "occupation": F.struct(F.lower(_text("occupation")).alias("v")),
                "income_bracket": F.struct(_text("income_bracket").alias("v")),
                "phone": F.struct(
                    S.e164_phone(F.col("phone"), S.iso_country(F.col("country"))).alias("v")
                ),
                "address": address("street", "city", "postcode", "country"),
            },
            F.to_timestamp(F.concat(F.col("ingest_month"), F.lit("-01"))),
        )
    for source in ("product_usage", "marketing_monthly"):
        if source in bronze:
            add(
                source,
                bronze[source],
                SOURCE_KEY[source],
                {
                    "email": F.struct(S.normalised_email(F.col("email")).alias("v")),
                },
                F.to_timestamp(F.concat(F.col("ingest_month"), F.lit("-01"))),
            )
    union = reduce(DataFrame.unionByName, rows)
    # A candidate whose every field is null offers nothing (most complete wins).
    return union.filter(~F.col("value").isin("{}", "null") & F.col("value").isNotNull())


def golden_snapshots(candidates_df: DataFrame, *, months: Sequence[str]) -> DataFrame:
    """The golden record of every customer as of each month's end (silver.customer_snapshots).

    A candidate counts from the month it was delivered; the rule of each attribute picks one.

    The choice is made where it can change, not in every month: each customer's attribute
    keeps its best candidate per month of delivery, a running minimum over those months gives
    the winner from that month on, and only then is each winner spread over the months until
    the next change. Joining every candidate to every later month instead grows with the
    square of the months (1.35 million rows for 18 months of the default world).
    """
    spark = candidates_df.sparkSession
    n = len(months)
    month_array = F.array(*[F.lit(m) for m in months])
    # The first month (index into ``months``) whose end sees the candidate; n: none does.
    visible = (
        candidates_df.filter(F.col("seen_month").isNotNull())
        .withColumn("from_idx", F.size(F.filter(month_array, lambda m: m < F.col("seen_month"))))
        .filter(F.col("from_idx") < n)
    )

    def spread(df: DataFrame, until: Column) -> DataFrame:
        """One row per month from ``from_idx`` up to (not including) ``until``."""
        index = F.explode(F.sequence(F.col("from_idx"), until - 1))
        return (
            df.withColumn("_idx", index)
            .withColumn("month", month_array[F.col("_idx")])
            .drop("_idx")
        )

    rule_df = spark.createDataFrame(
        [(r.attribute, s, r.order) for r in RULES for s in r.sources],
        "attribute string, source string, rule string",
    )
    # The rule's order as one ascending key (min wins): the most trusted source first where
    # the rule is trust, then the newest delivery month and time (unknown time last), then the
    # more trusted source, then the record id (unknown first).
    key = F.struct(
        F.coalesce(
            F.when(F.col("rule") == "trust", F.col("trust")).otherwise(F.lit(0)), F.lit(-(2**31))
        ).alias("k_rule"),
        (-month_index(F.col("seen_month"))).alias("k_month"),
        F.coalesce(-F.unix_micros("seen_at"), F.lit(2**63 - 1)).alias("k_seen_at"),
        F.coalesce(F.col("trust"), F.lit(-(2**31))).alias("k_trust"),
        F.col("record_id").isNotNull().alias("k_has_record"),
        F.col("record_id").alias("k_record"),
        F.col("value"),
        F.col("source"),
        F.col("seen_at"),
    )
    ranked = visible.join(rule_df, on=["attribute", "source"], how="inner").withColumn("c", key)
    per_delivery = ranked.groupBy("customer_key", "attribute", "from_idx").agg(
        F.min("c").alias("c")
    )
    by_attribute = Window.partitionBy("customer_key", "attribute").orderBy("from_idx")
    chosen = spread(
        per_delivery.withColumn(
            "c",
            F.min("c").over(by_attribute.rowsBetween(Window.unboundedPreceding, Window.currentRow)),
        ).withColumn("_until", F.lead("from_idx", 1, n).over(by_attribute)),
        F.col("_until"),
    ).select(
        "customer_key",
        "month",
        "attribute",
        "c.value",
        "c.source",
        F.col("c.k_record").alias("record_id"),
        "c.seen_at",
    )
    wide = chosen.groupBy("customer_key", "month").agg(
        F.map_from_entries(F.collect_list(F.struct("attribute", "value"))).alias("values"),
        F.map_from_entries(
            F.collect_list(F.struct("attribute", F.concat_ws(":", "source", "record_id")))
        ).alias("lineage"),
        F.max("seen_at").alias("updated_at"),
    )
    # What every visible candidate (ruled or not) adds from its month on: its source, a CRM
    # record id, a join date; each item from the first month it is seen.
    items = (
        visible.select(
            "customer_key",
            "from_idx",
            F.array(
                F.struct(F.lit("source").alias("kind"), F.col("source").alias("item")),
                F.struct(
                    F.lit("crm").alias("kind"),
                    F.when(F.col("source") == "crm_customers", F.col("record_id")).alias("item"),
                ),
                F.struct(
                    F.lit("join").alias("kind"),
                    F.when(
                        F.col("attribute") == "status", F.get_json_object("value", "$.join_date")
                    ).alias("item"),
                ),
            ).alias("_items"),
        )
        .select("customer_key", "from_idx", F.inline("_items"))
        .filter(F.col("item").isNotNull())
    )
    first_seen = items.groupBy("customer_key", "kind", "item").agg(
        F.min("from_idx").alias("from_idx")
    )
    sources = (
        spread(first_seen, F.lit(n))
        .groupBy("customer_key", "month")
        .agg(
            F.array_join(
                F.array_sort(F.collect_set(F.when(F.col("kind") == "source", F.col("item")))), ","
            ).alias("data_sources"),
            F.array_join(
                F.array_sort(F.collect_set(F.when(F.col("kind") == "crm", F.col("item")))), ","
            ).alias("crm_ids"),
            F.min(F.when(F.col("kind") == "join", F.col("item"))).alias("first_join"),
        )
    )

    def field(attribute: str, path: str = "v") -> Column:
        return F.get_json_object(F.col("values")[attribute], f"$.{path}")

    status = field("status")
    return (
        wide.join(sources, on=["customer_key", "month"], how="inner")
        .select(
            "customer_key",
            field("first_name").alias("first_name"),
            field("last_name").alias("last_name"),
            F.to_date(field("date_of_birth")).alias("date_of_birth"),
            field("national_id").alias("national_id"),
            field("gender").alias("gender"),
            field("marital_status").alias("marital_status"),
            field("education").alias("education"),
            field("occupation").alias("occupation"),
            field("income_bracket").alias("income_bracket"),
            field("email").alias("email"),
            field("phone").alias("phone"),
            field("address", "street").alias("street"),
            field("address", "city").alias("city"),
            field("address", "postcode").alias("postcode"),
            field("address", "country").alias("country"),
            field("plan_type").alias("plan_type"),
            F.to_date("first_join").alias("join_date"),
            F.coalesce(status, F.lit("active")).alias("status"),
            F.when(status == "closed", field("status", "month")).alias("closed_month"),
            field("device", "os").alias("device_os"),
            field("device", "id").alias("device_id"),
            field("credit", "score").cast("int").alias("credit_score"),
            field("credit", "has_debt").cast("boolean").alias("has_debt"),
            field("credit", "outstanding").cast("double").alias("debt_outstanding_usd"),
            "crm_ids",
            "data_sources",
            "updated_at",
            F.col("lineage"),
            "month",
        )
        .select(*CUSTOMER_SNAPSHOTS.fieldNames())
    )


def current_customers(snapshots_df: DataFrame) -> DataFrame:
    """The latest snapshot of every customer (silver.customers)."""
    latest = Window.partitionBy("customer_key").orderBy(F.desc("month"))
    return (
        snapshots_df.withColumn("_rank", F.row_number().over(latest))
        .filter("_rank = 1")
        .select(*CUSTOMERS.fieldNames())
    )
