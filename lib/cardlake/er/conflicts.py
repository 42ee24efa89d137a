"""What makes two person records two people, whatever else they share.

One definition for the matcher's two uses: a shared mailbox is no proof of one person when the
records conflict (:mod:`cardlake.er.deterministic`), and a cluster is split where links bridged
records whose birth dates conflict (:mod:`cardlake.er.resolve`). And what makes a shared
identifier no identity at all (:data:`MAX_RECORDS_PER_IDENTIFIER`): :func:`without_fillers`
takes such values out of the records before either pass sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType

log = logging.getLogger(__name__)

# Two birth dates are one person's when, day and month read either way round (a source that
# writes dd/MM and one that writes MM/dd), they are at most this many edits apart: a wrong
# digit in one record and two transposed ones in the other.
DOB_TYPO_EDITS = 3
# Two first given names are one person's when at most this many edits apart (typos), or one
# starts the other (an initial, a short form).
GIVEN_NAME_TYPO_EDITS = 2
# An identifier (a cross-reference key, a national id, a mailbox, a phone number) held by more
# records than this is a source's filler, not a person's or a household's: a "no e-mail"
# address, a switchboard's number, a default key. It links nobody and is no evidence for the
# matcher: the deterministic pass skips it, the probabilistic pass compares it as missing. One
# person's records across a bank's systems and deliveries are a handful (make run's world:
# 10,917 records of 2,000 customers, the most-held mailbox on 10, a key on 9); a family
# mailbox is a few people's. A filler held by fewer records still passes this test; the
# conflicts below stop most of what it would join.
MAX_RECORDS_PER_IDENTIFIER = 100
# The identifiers a filler is taken out of: one value a record, and a list of keys.
IDENTIFIERS = ("email_canonical", "phone", "national_id")
XREF_KEYS = "xref_keys"


def without_fillers(
    records_df: DataFrame, *, max_records: int = MAX_RECORDS_PER_IDENTIFIER
) -> DataFrame:
    """``records_df`` with every identifier more than ``max_records`` of its records hold taken
    out: such a mailbox, phone or national id becomes null, such a cross-reference key leaves
    ``xref_keys``. The matcher's one treatment of fillers: the deterministic pass, the blocks,
    the prior and the model all see the records without them. The values stay in the plan,
    never in a log (counts only). Columns absent from ``records_df`` are skipped."""
    present = [c for c in (*IDENTIFIERS, XREF_KEYS) if c in records_df.columns]
    held = {
        c: v
        for c, v in over_held_values(records_df, dict.fromkeys(present, max_records)).items()
        if v
    }
    for key, found in sorted(held.items()):
        log.info(
            "%s: %d value(s) on more than %d records: fillers, taken out",
            key,
            len(found),
            max_records,
        )

    def column(name: str) -> Column:
        if name not in held:
            return F.col(name)
        if name == XREF_KEYS:
            fillers = F.array(*[F.lit(v) for v in held[name]])
            return F.filter(F.col(name), lambda k: ~F.array_contains(fillers, k)).alias(name)
        return F.when(~F.col(name).cast("string").isin(held[name]), F.col(name)).alias(name)

    return records_df.select(*[column(c) for c in records_df.columns]) if held else records_df


def over_held_values(records_df: DataFrame, limits: Mapping[str, int]) -> dict[str, list[str]]:
    """Per column of ``limits``, the values (as strings) more records hold than its limit (a
    list column's elements, each counted once a record). One aggregate over every column at
    once, whose answer is at most ``rows / limit`` values a column."""
    common: dict[str, list[str]] = {c: [] for c in limits}
    if not limits:
        return common
    lists = [c for c in limits if isinstance(records_df.schema[c].dataType, ArrayType)]
    parts = [
        records_df.select(
            F.lit(c).alias("key"),
            F.explode(F.array_distinct(F.col(c).cast("array<string>"))).alias("value"),
        )
        for c in lists
    ]
    if scalars := [c for c in limits if c not in lists]:
        pairs = [
            F.struct(F.lit(c).alias("key"), F.col(c).cast("string").alias("value")) for c in scalars
        ]
        parts.append(records_df.select(F.inline(F.array(*pairs))))
    over = (
        reduce(DataFrame.unionByName, parts)
        .where(F.col("value").isNotNull())
        .groupBy("key", "value")
        .count()
        .where(F.col("count") > min(limits.values()))
    )
    for row in over.collect():
        if row["count"] > limits[row["key"]]:
            common[row["key"]].append(row["value"])
    return common


def birth_dates_apart(a: Column, b: Column) -> Column:
    """True when two ``yyyy-MM-dd`` birth dates cannot be one person's (see the constant);
    null when either is unknown."""
    b_swapped = F.concat_ws("-", F.substring(b, 1, 4), F.substring(b, 9, 2), F.substring(b, 6, 2))
    return (F.levenshtein(a, b) > DOB_TYPO_EDITS) & (F.levenshtein(a, b_swapped) > DOB_TYPO_EDITS)


def given_names_apart(given_a: str, surname_a: str, given_b: str, surname_b: str) -> Column:
    """True when two records' first given names are plainly two names: more than
    ``GIVEN_NAME_TYPO_EDITS`` apart, neither the start of the other, and not both names
    swapped. Null when either given name is unknown. A nickname (Bob for Robert) is another
    name here: it only sends a shared mailbox's pair to the probabilistic pass, where the
    mailbox then counts for nothing (:func:`given_names_apart_sql`). Arguments name columns."""
    return F.expr(given_names_apart_sql(given_a, surname_a, given_b, surname_b))


def given_names_apart_sql(given_a: str, surname_a: str, given_b: str, surname_b: str) -> str:
    """:func:`given_names_apart` as SQL that Spark and DuckDB read alike (Splink's comparison
    levels are SQL), on the columns named.

    Names swapped means both names swapped: one record's given name is the other's surname,
    and its surname is the other's given name, with a typo at most (or unknown). A surname
    alone in the given name's place is what a family member's record with swapped names looks
    like beside another member's (Stokes Joyce against Naomi Stokes): two people.
    """

    def first(given: str) -> str:
        return f"nullif(split_part({given}, ' ', 1), '')"

    def close(x: str, y: str) -> str:  # a typo apart, or one the start of the other
        return (
            f"(levenshtein({x}, {y}) <= {GIVEN_NAME_TYPO_EDITS} "
            f"OR substr({x}, 1, length({y})) = {y} OR substr({y}, 1, length({x})) = {x})"
        )

    def swapped(given: str, surname: str, other_given: str, other_surname: str) -> str:
        return (
            f"coalesce({given} = {other_surname} "
            f"AND coalesce({close(first(other_given), surname)}, true), false)"
        )

    a, b = first(given_a), first(given_b)
    return (
        f"(NOT {close(a, b)} "
        f"AND NOT {swapped(given_a, surname_a, given_b, surname_b)} "
        f"AND NOT {swapped(given_b, surname_b, given_a, surname_a)})"
    )


def two_people_on_one_mailbox_sql(*, with_dob: bool) -> str:
    """SQL on a Splink pair (``_l`` / ``_r`` columns) true when the two records share a mailbox
    but name two people: two given names (:func:`given_names_apart_sql`) and, ``with_dob``
    (birth dates held), not one birth date. One birth date beside two given names is a
    nickname, one person's. The matcher's e-mail comparison holds such a pair as neutral: a
    family's joint mailbox is no evidence either way.

    Narrower than the deterministic pass's test (birth dates *or* given names apart): there a
    doubt sends the pair to the model; here the model's other fields still decide.
    """
    two_people = "email_canonical_l = email_canonical_r AND " + given_names_apart_sql(
        "given_name_l", "surname_l", "given_name_r", "surname_r"
    )
    if with_dob:
        two_people += " AND NOT coalesce(dob_l = dob_r, false)"
    return two_people


def known(condition: Column) -> Column:
    """``condition``, with unknown (a value missing) taken as no conflict."""
    return F.coalesce(condition, F.lit(False))
