"""Person records: any input plus a role mapping, standardised into one shape.

A mapping is a flat dictionary from role to the input's column name. Every role but
``record_id`` may be absent; columns not named are ignored. The shape the matcher works on
(:data:`PERSON_RECORD_COLUMNS`) always has every column, null where a role is missing, so
comparisons and blocking rules can be chosen from what the data actually holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.er import standardise as S

ROLES = (
    "record_id",
    "given_name",
    "surname",
    "full_name",
    "date_of_birth",
    "email",
    "phone",
    "street_number",
    "address_1",
    "address_2",
    "city",
    "postcode",
    "state",
    "country",
    "national_id",
    "xref_keys",
)
"""Roles a mapping may name. ``xref_keys``: cross-reference keys (``|``, ``;`` or space
separated) that identify a person in some system; two records sharing one are the same person."""

PERSON_RECORD_COLUMNS = (
    "uid",
    "record_id",
    "source_dataset",
    "given_name",
    "surname",
    "name_concat",
    "dob",
    "email",
    "email_canonical",
    "phone",
    "street_number",
    "street",
    "city",
    "postcode",
    "state",
    "country",
    "national_id",
    "xref_keys",
)
"""The standardised shape. ``uid`` is unique across inputs (``<dataset>|<record_id>``)."""


class MappingError(ValueError):
    """A role mapping is malformed or names a column the input does not have."""


def load_mapping(path: str | Path) -> dict[str, str]:
    """Reads and validates a mapping YAML (a flat role → column dictionary).

    Raises:
        MappingError: not a flat mapping of known roles to column names, or no ``record_id``.
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: cannot read the mapping: {exc}") from exc
    return validate_mapping(data, where=str(path))


def validate_mapping(data: object, *, where: str = "mapping") -> dict[str, str]:
    """Checks a role mapping and returns it as ``dict[str, str]``."""
    if not isinstance(data, Mapping):
        raise MappingError(f"{where}: must be a flat mapping of role to column name")
    unknown = sorted(str(k) for k in data if k not in ROLES)
    if unknown:
        raise MappingError(f"{where}: unknown role(s) {unknown}; known roles: {list(ROLES)}")
    bad = sorted(str(k) for k, v in data.items() if not isinstance(v, str) or not v)
    if bad:
        raise MappingError(f"{where}: role(s) {bad} must name a column (a non-empty string)")
    if "record_id" not in data:
        raise MappingError(f"{where}: the record_id role is required")
    return {str(k): str(v) for k, v in data.items()}


def read_person_file(spark: SparkSession, path: str) -> DataFrame:
    """Reads a CSV (header row, every column a string) or Parquet file, by extension."""
    lower = path.lower().rstrip("/")
    if lower.endswith(".csv"):
        return spark.read.csv(
            path, header=True, inferSchema=False, multiLine=False, encoding="UTF-8"
        )
    if lower.endswith(".parquet") or lower.endswith(".pq"):
        return spark.read.parquet(path)
    raise MappingError(f"{path}: expected a .csv or .parquet file")


def _role(df: DataFrame, mapping: Mapping[str, str], role: str) -> Column:
    column = mapping.get(role)
    if column is None:
        return F.lit(None).cast("string")
    return F.col(f"`{column}`").cast("string")


def _split_full_name(full: Column) -> tuple[Column, Column]:
    # "SURNAME, Given" is unambiguous; otherwise the first token is the given name and the last
    # the surname (a "Surname Given" order is caught by the comparison's swapped-name level).
    comma = full.contains(",")
    before = F.trim(F.substring_index(full, ",", 1))
    after = F.trim(F.substring_index(full, ",", -1))
    tokens = F.split(F.trim(full), r"\s+")
    first = tokens.getItem(0)
    last = F.element_at(tokens, -1)
    given = F.when(comma, after).otherwise(F.when(F.size(tokens) > 1, first))
    surname = F.when(comma, before).otherwise(last)
    return given, surname


def to_person_records(
    df: DataFrame,
    *,
    mapping: Mapping[str, str],
    dataset: str = "input",
    default_region: str | None = None,
) -> DataFrame:
    """Standardises any person-bearing DataFrame into :data:`PERSON_RECORD_COLUMNS`.

    Args:
        df: the input, one row per source record.
        mapping: role → column name (validated with :func:`validate_mapping`).
        dataset: a label for this input; part of ``uid`` and ``source_dataset``.
        default_region: ISO alpha-2 region for phone numbers of rows with no country.

    Returns:
        One row per input row, standardised; rows with a null or blank ``record_id`` dropped.

    Raises:
        MappingError: the mapping names a column ``df`` does not have.
    """
    mapping = validate_mapping(dict(mapping))
    missing = sorted(c for c in mapping.values() if c not in df.columns)
    if missing:
        raise MappingError(f"mapping names column(s) {missing} not in the input {df.columns}")

    def role(name: str) -> Column:
        return _role(df, mapping, name)

    full_given, full_surname = _split_full_name(role("full_name"))
    given_raw = F.coalesce(S.normalised_name(role("given_name")), S.normalised_name(full_given))
    surname = F.coalesce(S.normalised_name(role("surname")), S.normalised_name(full_surname))
    address = F.concat_ws(" ", role("address_1"), role("address_2"))
    country = S.iso_country(role("country"))
    xref = F.filter(
        F.split(F.coalesce(role("xref_keys"), F.lit("")), r"[|;\s]+"), lambda k: k != ""
    )
    record_id = F.trim(role("record_id"))
    staged = df.select(
        record_id.alias("record_id"),
        given_raw.alias("given_raw"),
        surname.alias("surname"),
        S.parsed_date(role("date_of_birth")).alias("dob_date"),
        S.normalised_email(role("email")).alias("email"),
        S.canonical_email(role("email")).alias("email_canonical"),
        role("phone").alias("phone_as_written"),
        F.coalesce(
            S.street_number(role("street_number")), S.street_number(role("address_1"))
        ).alias("street_number"),
        S.normalised_street(address).alias("street"),
        S.folded_text(role("city")).alias("city"),
        S.normalised_postcode(role("postcode")).alias("postcode"),
        S.folded_text(role("state")).alias("state"),
        country.alias("country"),
        S.normalised_postcode(role("national_id")).alias("national_id"),
        xref.alias("xref_keys"),
    ).where(F.col("record_id").isNotNull() & (F.col("record_id") != ""))
    given = S.formal_given_name(F.col("given_raw"))  # given_raw is normalised already
    # The phone's region is the country found above: its map literal once in the plan, not twice.
    phone = S.e164_phone(F.col("phone_as_written"), F.col("country"), default_region=default_region)
    return staged.select(
        F.concat(F.lit(f"{dataset}|"), F.col("record_id")).alias("uid"),
        "record_id",
        F.lit(dataset).alias("source_dataset"),
        given.alias("given_name"),
        "surname",
        F.when(
            given.isNotNull() & F.col("surname").isNotNull(),
            F.concat_ws(" ", given, F.col("surname")),
        ).alias("name_concat"),
        F.date_format("dob_date", "yyyy-MM-dd").alias("dob"),
        "email",
        "email_canonical",
        phone.alias("phone"),
        "street_number",
        "street",
        "city",
        "postcode",
        "state",
        "country",
        "national_id",
        "xref_keys",
    )
