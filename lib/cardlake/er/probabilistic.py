"""Probabilistic pass: a Fellegi-Sunter model trained and scored by Splink.

Training runs in DuckDB on a bounded seeded sample; scoring runs in DuckDB on one machine and
on Spark on a cluster (``ModelSettings.scoring_backend``).

Comparisons and blocking rules are chosen from the roles the data actually holds (a column
that is entirely null is left out). Every parameter is estimated from the data each run:

- the prior (probability two random records match) from deterministic rules, divided by
  their recall as the model estimates it;
- u probabilities by seeded random sampling of record pairs;
- m probabilities by expectation maximisation over two blocking passes, so every comparison
  is trained in at least one of them;
- term-frequency adjustments on names, birth dates, city and postcode.

The pairs scored are those a block reaches (:func:`prediction_blocking_rules`) among records
without fillers (an identifier held by more than
:data:`~cardlake.er.conflicts.MAX_RECORDS_PER_IDENTIFIER` records, taken out by
:func:`cardlake.er.conflicts.without_fillers` before either pass); a birth date held by more
than :data:`MAX_KEY_BLOCK_RECORDS` records blocks nothing; and the blocks led by a name alone
keep only pairs whose birth dates may be one person's.

Names are one comparison in which the given name decides (a shared surname is what relatives
have, not evidence of one person), and birth dates have levels for the errors that turn one
date into another (day and month swapped, one digit off), not for nearness in time.

Phone, street, postcode and city are one comparison (``household``): they are correlated
given match status, and as separate comparisons their Bayes factors multiplied into
near-certain links between members of one household.

Splink's fuzzy comparisons (Jaro-Winkler, Damerau-Levenshtein) are Scala UDFs in a jar
shipped with Splink. The session must be built with :func:`splink_spark_conf` for them to
load; without the jar the model falls back to Spark's built-in ``levenshtein``.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import reduce
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.er.conflicts import over_held_values, two_people_on_one_mailbox_sql

log = logging.getLogger(__name__)

SPLINK_UDFS = ("jaro_winkler", "damerau_levenshtein")
MIN_PRIOR_RECALL = 0.05
"""The least recall the prior's deterministic rules are taken to have (see
:func:`_with_prior_from_recall`): below it the estimate rests on too few pairs."""
COMPARED = (
    "given_name",
    "surname",
    "dob",
    "email_canonical",
    "phone",
    "street",
    "street_number",
    "city",
    "postcode",
    "state",
    "national_id",
)
"""The person-record columns the model can compare (:func:`present_columns` keeps those held)."""


def splink_spark_conf() -> dict[str, str]:
    """Spark settings a session needs at build time for Splink's similarity UDFs."""
    from splink.backends.spark import similarity_jar_location

    return {"spark.jars": similarity_jar_location()}


@dataclass(frozen=True)
class ModelSettings:
    """Knobs of the probabilistic pass; none of them describes a particular dataset."""

    seed: int = 20240101
    u_max_pairs: float = 1e6
    em_max_iterations: int = 25
    prior_recall: float = 0.8
    """Recall Splink's first estimate of the prior (the probability two random records match)
    assumes for the deterministic rules; once m is estimated, the rules' own recall replaces
    it (:func:`_with_prior_from_recall`). The prior, with the m and u probabilities, gives every
    pair's match probability; the link threshold is set on that probability."""
    candidate_match_probability: float = 0.01
    """Pairs scoring below this are not kept at all (they cannot be links)."""
    break_lineage_method: str = "persist"
    training_backend: str = "duckdb"
    """Where m/u/prior are estimated: "duckdb" (in-process, on a bounded seeded sample) or
    "spark" (Splink's Spark backend end to end)."""
    max_training_records: int = 200_000
    scoring_backend: str = "auto"
    """Where the blocked pairs are scored: "duckdb" (in the driver's process, the records
    brought there through Arrow), "spark" (Splink's Spark backend, distributed), or "auto":
    DuckDB when Spark's master is local (one machine: the driver is the machine, and DuckDB
    scored 100,000 records in a fraction of Spark's time, ``bench/bench_er.py``), Spark on a
    cluster."""


@dataclass
class ScoredPairs:
    """The output of the probabilistic pass."""

    pairs_df: DataFrame
    """``(uid_l, uid_r, match_weight, match_probability)`` for blocked pairs above the floor."""
    model: dict[str, Any]
    """The trained Splink model (settings with m/u), reusable for incremental matching."""
    comparisons: tuple[str, ...]
    """The columns compared."""
    fuzzy: bool
    """Whether Splink's jar loaded (Jaro-Winkler) or the built-in fallback was used."""


def present_columns(records_df: DataFrame) -> set[str]:
    """The compared columns that hold a value in at least one record: the comparisons and
    blocking rules (:func:`prediction_blocking_rules`) are chosen from them."""
    counts = records_df.select(*[F.count(F.col(c)).alias(c) for c in COMPARED]).first()
    assert counts is not None
    return {c for c in COMPARED if counts[c]}


def _jar_loaded(spark: SparkSession) -> bool:
    # Registering is idempotent; it fails when the jar is not on the session's classpath.
    from splink.internals.spark.jar_location import get_scala_udfs

    try:
        for name, class_name, return_type in get_scala_udfs():
            spark.udf.registerJavaFunction(name, class_name, return_type)
    except Exception:
        return False
    return all(spark.catalog.functionExists(name) for name in SPLINK_UDFS)


def _comparisons(present: set[str], *, fuzzy: bool) -> list[Any]:
    import splink.comparison_library as cl

    out: list[Any] = []
    if {"given_name", "surname"} <= present:
        out.append(_name_comparison(fuzzy=fuzzy))
    else:
        for col in ("given_name", "surname"):
            if col in present:
                out.append(
                    cl.LevenshteinAtThresholds(col, [1, 2]).configure(
                        term_frequency_adjustments=True
                    )
                )
    if "dob" in present:
        out.append(_birth_date_comparison(fuzzy=fuzzy))
    if "email_canonical" in present:
        out.append(_email_comparison(present, fuzzy=fuzzy))
    household = _household_comparison(present, fuzzy=fuzzy)
    if household is not None:
        out.append(household)
    for col in ("state", "national_id"):
        if col in present:
            out.append(cl.ExactMatch(col))
    return out


NAME_SIMILARITY = (0.92, 0.88)
"""Jaro-Winkler thresholds of the name levels (Splink's defaults for person names): a typo or
two; without Splink's jar, Levenshtein distances 1 and 2 stand in for them."""

# One given name is a strict prefix of the other: an initial ("j" / "john"), a short form
# ("chris" / "christopher", "nat" / "natalie") or a second given name left out ("anna" /
# "anna maria"). Plain SQL that DuckDB and Spark read alike.
_SHORT_FORM_SQL = (
    "(length(given_name_l) < length(given_name_r) "
    "AND substr(given_name_r, 1, length(given_name_l)) = given_name_l) "
    "OR (length(given_name_r) < length(given_name_l) "
    "AND substr(given_name_l, 1, length(given_name_r)) = given_name_r)"
)
# yyyy-MM-dd read with day and month the other way round: a dd/MM source against an MM/dd one.
_DAY_MONTH_SWAPPED_SQL = (
    "substr(dob_l, 1, 4) = substr(dob_r, 1, 4) "
    "AND substr(dob_l, 6, 2) = substr(dob_r, 9, 2) "
    "AND substr(dob_l, 9, 2) = substr(dob_r, 6, 2)"
)


def _name_comparison(*, fuzzy: bool) -> Any:
    """Given name and surname as one comparison in which the given name decides.

    Relatives share a surname, and a household shares it with an address and a phone: a pair
    whose surnames agree and whose given names do not is what two members of a family look
    like, and is no evidence that they are one person. Splink's ``ForenameSurnameComparison``
    gives such a pair a level of its own ("same surname") whose weight is estimated against
    random pairs, so it is positive, and added to the household's it merged family members.
    Here the surname counts only beside an agreeing given name (exactly, with a typo, as an
    initial or a short form, or written in the surname's place); pairs whose given names
    differ fall into the last level whatever their surnames, and get the weight a different
    first name deserves, strongly negative.
    A pair with a given name missing on either side is neutral: the surname alone decides
    nothing. Term frequencies on the full name and on the given name: a common name agreeing
    is weaker evidence than a rare one.
    """
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    given, surname = "given_name", "surname"

    def similar(col: str, rank: int) -> Any:
        if fuzzy:
            return cll.JaroWinklerLevel(col, NAME_SIMILARITY[rank])
        return cll.LevenshteinLevel(col, rank + 1)

    def given_similar() -> Any:
        # A typo in a short given name ("ana" / "aan") leaves its Jaro-Winkler similarity low.
        if fuzzy:
            return cll.Or(similar(given, 1), cll.DamerauLevenshteinLevel(given, 1))
        return similar(given, 1)

    levels: list[Any] = [
        cll.NullLevel(given),
        cll.ExactMatchLevel("name_concat").configure(
            tf_adjustment_column="name_concat", label_for_charts="same given name and surname"
        ),
        cll.ColumnsReversedLevel(given, surname, symmetrical=True).configure(
            label_for_charts="given name and surname swapped"
        ),
        _names_swapped_similar(fuzzy=fuzzy),
        cll.And(similar(given, 0), similar(surname, 0)).configure(
            label_for_charts="both names nearly the same"
        ),
        cll.And(given_similar(), similar(surname, 1)).configure(
            label_for_charts="both names similar"
        ),
        cll.And(cll.CustomLevel(_SHORT_FORM_SQL), similar(surname, 1)).configure(
            label_for_charts="given name an initial or short form, surname similar"
        ),
        _first_given_names_similar(fuzzy=fuzzy),
        cll.ExactMatchLevel(given).configure(
            tf_adjustment_column=given, label_for_charts="same given name, other surname"
        ),
        given_similar().configure(label_for_charts="similar given name, other surname"),
        cll.ElseLevel().configure(label_for_charts="different given names"),
    ]
    return cl.CustomComparison(
        comparison_levels=levels,
        output_column_name="name",
        comparison_description="given name and surname",
    )


def _first_given_names_similar(*, fuzzy: bool) -> Any:
    """A level: one given name has two words, their first words are similar, and the surnames.

    A second given name dropped and a typo in the first ("alphonse charles" / "alphpnse") is
    neither a short form nor a similar string; in people_maker's heavy profile (2,000 people,
    seed 11) 5 of the 23 true links missed were such pairs, all sharing a phone and a street,
    and fell in the "different given names" level, the one for household members.
    """
    from splink.internals.comparison_level_creator import ComparisonLevelCreator

    class FirstGivenNamesSimilar(ComparisonLevelCreator):
        def create_sql(self, sql_dialect: Any) -> str:
            def similar(a: str, b: str, jaro_winkler: float) -> str:
                if not fuzzy:
                    return f"{sql_dialect.levenshtein_function_name}({a}, {b}) <= 2"
                jw = sql_dialect.jaro_winkler_function_name
                dl = sql_dialect.damerau_levenshtein_function_name
                return f"({jw}({a}, {b}) >= {jaro_winkler} OR {dl}({a}, {b}) <= 1)"

            first_l = "split_part(given_name_l, ' ', 1)"
            first_r = "split_part(given_name_r, ' ', 1)"
            return (
                "(given_name_l LIKE '% %' OR given_name_r LIKE '% %') "
                f"AND {similar(first_l, first_r, NAME_SIMILARITY[1])} "
                f"AND {similar('surname_l', 'surname_r', NAME_SIMILARITY[1])}"
            )

        def create_label_for_charts(self) -> str:
            return "first given names similar, surname similar"

    return FirstGivenNamesSimilar()


def _names_swapped_similar(*, fuzzy: bool) -> Any:
    """A level: given name and surname written the other way round, with a typo in either.

    Splink's levels compare a column with itself; this one compares each name with the other
    column, in the dialect's own similarity function (the jar's on Spark, DuckDB's built-in).
    """
    from splink.internals.comparison_level_creator import ComparisonLevelCreator

    class NamesSwappedSimilar(ComparisonLevelCreator):
        def create_sql(self, sql_dialect: Any) -> str:
            def similar(a: str, b: str) -> str:
                if fuzzy:
                    jw = sql_dialect.jaro_winkler_function_name
                    return f"{jw}({a}, {b}) >= {NAME_SIMILARITY[1]}"
                return f"{sql_dialect.levenshtein_function_name}({a}, {b}) <= 2"

            one_way = similar("given_name_l", "surname_r")
            return f"{one_way} AND {similar('surname_l', 'given_name_r')}"

        def create_label_for_charts(self) -> str:
            return "given name and surname swapped, similar"

    return NamesSwappedSimilar()


def _email_comparison(present: set[str], *, fuzzy: bool) -> Any:
    """E-mail addresses: the same mailbox, the same user name at another domain, similar user
    names (neutral), or different.

    User names are made of names, so two people with similar names have similar user names
    far more often than the random pairs a level's u is estimated on: a "similar user name"
    level with its own weight counted the names a second time (Splink's ``EmailComparison``
    has two such levels: with them, two people named Vincent Wilson and Wilson Vincent, born
    a year apart, with other mailboxes, phones and addresses, were linked at 0.89 in
    people_maker's heavy profile with u taken without the matches, see
    :func:`_with_prior_from_recall`). Nor is a similar user name evidence against a link (one
    person's second mailbox often adds a digit), so the level is neutral, like a missing
    address; only other user names count against.

    A mailbox one family gives (a joint account's) is shared by two people, and random pairs,
    on which the "same address" level's u is estimated, almost never share one: its Bayes
    factor outweighed two given names and two birth dates (people_maker's families profile:
    265 direct false links at 0.95 and above, each a couple on one mailbox and one address).
    A shared mailbox whose records name two people is neutral
    (:func:`cardlake.er.conflicts.two_people_on_one_mailbox_sql`: two given names by the test
    the deterministic pass applies and, where birth dates are held, not one date). The rest of
    the two records decides, as for the pairs the deterministic pass leaves here. Without
    names, a shared mailbox is the same address.
    """
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import ColumnExpression

    def user() -> Any:
        return ColumnExpression("email_canonical").regex_extract("^[^@]+")

    similar = (
        cll.JaroWinklerLevel(user(), NAME_SIMILARITY[1])
        if fuzzy
        else cll.LevenshteinLevel(user(), 2)
    )
    levels: list[Any] = [cll.NullLevel("email_canonical")]
    if {"given_name", "surname"} <= present:
        two_people = two_people_on_one_mailbox_sql(with_dob="dob" in present)
        levels.append(
            cll.CustomLevel(two_people).configure(
                is_null_level=True, label_for_charts="same address, two given names"
            )
        )
    levels += [
        cll.ExactMatchLevel("email_canonical").configure(label_for_charts="same address"),
        cll.ExactMatchLevel(user()).configure(label_for_charts="same user name, other domain"),
        similar.configure(is_null_level=True, label_for_charts="similar user names"),
        cll.ElseLevel().configure(label_for_charts="different addresses"),
    ]
    return cl.CustomComparison(
        comparison_levels=levels,
        output_column_name="email_canonical",
        comparison_description="e-mail address",
    )


def _birth_date_comparison(*, fuzzy: bool) -> Any:
    """Birth dates: the same, day and month swapped, one digit off, or different.

    The errors that turn one person's birth date into another string are a source's
    day/month order and a mistyped or transposed digit; these are levels. Nearness in time is
    not: Splink's ``DateOfBirthComparison`` has "within a month / a year / ten years" levels,
    and spouses and siblings, who share an address, a phone and often a surname, are born
    within ten years of each other far more often than the random pairs the level's u is
    estimated on, so a household member's birth date weighed only mildly against a link. With
    Splink's name and birth-date comparisons, 37 of the 1,166 pairs clustered together in
    people_maker's heavy profile (500 people, seed 7) were two people, all with different
    given names; with this one and :func:`_name_comparison`, none. Any other difference is the
    last level. Term frequencies on the
    same date: one many records share (a system's default, a clamped minimum age) is weak
    evidence.
    """
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    levels: list[Any] = [
        cll.NullLevel("dob"),
        cll.ExactMatchLevel("dob").configure(
            tf_adjustment_column="dob", label_for_charts="same date"
        ),
        cll.CustomLevel(_DAY_MONTH_SWAPPED_SQL, label_for_charts="day and month swapped"),
        (
            cll.DamerauLevenshteinLevel("dob", 1) if fuzzy else cll.LevenshteinLevel("dob", 1)
        ).configure(label_for_charts="one digit off"),
        cll.ElseLevel().configure(label_for_charts="different dates"),
    ]
    return cl.CustomComparison(
        comparison_levels=levels, output_column_name="dob", comparison_description="birth date"
    )


def _household_comparison(present: set[str], *, fuzzy: bool) -> Any | None:
    """Phone and address as one comparison, strongest shared evidence first.

    Fellegi-Sunter multiplies the Bayes factors of its comparisons as if they were independent
    given match status. Street, postcode, city and phone are not: two members of one household
    share all four, so as separate comparisons they add up to a near-certain match for any two
    people under one roof (measured: different first names and birth dates ten years apart
    still scored 0.9999). As levels of one comparison they count once, and the model estimates
    how often a match and a non-match share a household; names and birth date decide the rest.
    """
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    street = (
        "street"
        if "street" in present
        else ("street_number" if "street_number" in present else None)
    )
    parts = [c for c in (street, "postcode", "city", "phone") if c is not None and c in present]
    if not parts:
        return None

    def same(col: str) -> Any:
        return cll.ExactMatchLevel(col)

    def near_street() -> Any:
        assert street is not None
        return (
            cll.JaroWinklerLevel(street, 0.9)
            if fuzzy and street == "street"
            else cll.LevenshteinLevel(street, 2)
        )

    place = [same(c) for c in ("postcode", "city") if c in present]
    levels: list[Any] = [cll.And(*[cll.NullLevel(c) for c in parts])]
    if "phone" in present and street is not None:
        levels.append(
            cll.And(same("phone"), same(street)).configure(label_for_charts="same phone and street")
        )
    if street is not None and place:
        levels.append(
            cll.And(same(street), cll.Or(*place) if len(place) > 1 else place[0]).configure(
                label_for_charts="same address"
            )
        )
    if "phone" in present:
        levels.append(same("phone").configure(label_for_charts="same phone"))
    if street is not None and place:
        levels.append(
            cll.And(near_street(), cll.Or(*place) if len(place) > 1 else place[0]).configure(
                label_for_charts="similar street, same postcode or city"
            )
        )
    for col in ("postcode", street, "city"):
        if col is not None and col in present:
            level = same(col)
            if col in ("postcode", "city"):
                level = level.configure(tf_adjustment_column=col)
            levels.append(level)
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(
        comparison_levels=levels,
        output_column_name="household",
        comparison_description="phone and address",
    )


def _first_letter(col: str) -> str:
    # A blocking expression: typing errors rarely hit a name's first letter (Soundex and
    # every phonetic key keep it for that reason), so records whose names both carry a typo
    # still meet on their initials.
    return f"substr({col}, 1, 1)"


_FIRST_LETTER = re.compile(r"^substr\((\w+), 1, 1\)$")

SOUNDS = {"given_name_sound": "given_name", "surname_sound": "surname"}
"""Blocking keys -> the name each codes: its American Soundex (first letter and the next three
consonant classes), which a typo in a vowel, a doubled or dropped letter leaves unchanged.
Computed by Spark (:func:`with_blocking_keys`) before the records reach Splink: DuckDB has no
Soundex."""

_PREDICT_BLOCKS: tuple[tuple[str, ...], ...] = (
    ("email_canonical",),
    ("phone",),
    ("dob",),
    ("national_id",),
    ("given_name", "surname"),
    ("surname", "postcode"),
    ("given_name", "postcode"),
    ("surname", "city", "street_number"),
    # A record with a typo in both names and its birth date, e-mail or phone missing or
    # changed meets its duplicates only here: same street line and given initial, or same
    # initials and postcode. Both stay small in any file (a street line or a postcode holds
    # a few households; the initials split them further), unlike a block on a town or on a
    # name prefix alone. On people_maker's heavy profile they raise the share of true pairs
    # the blocks can reach from 0.990 and 0.979 to 0.995 and 0.994 (seeds 7 and 11).
    ("street", _first_letter("given_name")),
    (_first_letter("given_name"), _first_letter("surname"), "postcode"),
)
# When most other fields are missing, the names are all two records share: 82 of the 159 true
# pairs no block above reached in people_maker's sparse profile (500 people, seed 7) had
# nothing else held on both sides, and most of the rest a town at most. One name the same and
# the other's initial, both names' Soundex, or a town and both initials reach them; each block
# is a name's namesakes split by a letter or a code, so it grows like the name blocks above
# (candidate pairs 1.3 times as many on the sparse and heavy profiles, 1.8 times on the
# generator's default world, every true pair of which was reached before). They are kept to
# pairs whose birth dates may be one person's (_BIRTH_DATES_MAY_AGREE below).
_NAME_LED_BLOCKS: tuple[tuple[str, ...], ...] = (
    ("given_name", _first_letter("surname")),
    ("surname", _first_letter("given_name")),
    ("given_name_sound", "surname_sound"),
    ("city", _first_letter("given_name"), _first_letter("surname")),
)
# Given name and surname written the other way round in one record, a typo in at most one of
# them (beyond its first letter): a column against the other, both ways, as two equi-joins
# (one rule with OR would be a cross join). Plain SQL that DuckDB and Spark read alike.
_SWAPPED_NAME_BLOCKS = (
    "l.given_name = r.surname AND substr(l.surname, 1, 1) = substr(r.given_name, 1, 1)",
    "l.surname = r.given_name AND substr(l.given_name, 1, 1) = substr(r.surname, 1, 1)",
)
# The name-led blocks hold a common name's namesakes: in bench_er's 100,814 records 11 of the
# 17 million candidate pairs, DuckDB's prediction 24.6 s of its 30 (2 cores). Almost all of
# them have two birth dates that no typo turns into each other. Where both records hold one,
# these blocks keep the pairs whose birth dates share the year or the month and day: a digit
# wrong in one part, or day and month swapped (the levels of the birth-date comparison), as
# the records a name block exists for, with nothing else in common, have. Prediction 6.7 s,
# the same pairs above the candidate floor but one (bench_er, 2026-12-07). Narrower on purpose
# than the test for two people (conflicts.birth_dates_apart: more than three edits apart both
# ways), which a cluster must fail before it is cut: two random dates of one decade are often
# within three edits, so that test here would keep most namesakes; and where this one drops a
# pair with errors in two parts, any other shared field still blocks it.
_BIRTH_DATES_MAY_AGREE = (
    "(l.dob IS NULL OR r.dob IS NULL OR substr(l.dob, 1, 4) = substr(r.dob, 1, 4) "
    "OR substr(l.dob, 6, 5) = substr(r.dob, 6, 5))"
)


# A block on one value holds the records that share it: a person's few, or a family's. An
# identifier far more records hold is a filler, not an identity: the records come here without
# it (conflicts.without_fillers), so it neither blocks nor counts as evidence, nor estimates the
# prior. A value many records hold may still be each one's own (the generator's world clips
# every age under 18 to one birth date: 3,654 of bench_er's 100,814 records, 6.7 million of its
# 17 million candidate pairs): past MAX_KEY_BLOCK_RECORDS it blocks nothing, but it is still
# compared wherever the other blocks meet. A block of 1,000 records is half a million pairs.
# Every key block's rule names its flag, as the models saved before do.
KEY_BLOCKS = ("email_canonical", "phone", "dob", "national_id")
MAX_KEY_BLOCK_RECORDS = 1000
_TOO_COMMON = "{}_too_common"


def with_blocking_keys(
    records: Sequence[DataFrame], *, max_key_block_records: int = MAX_KEY_BLOCK_RECORDS
) -> list[DataFrame]:
    """Each of ``records`` with the blocking keys of :data:`SOUNDS` (null where the name is)
    and, for each column of :data:`KEY_BLOCKS` it has, a flag ``<column>_too_common``: true
    where more than ``max_key_block_records`` records of all of ``records`` hold the value.
    One Spark job.
    """
    columns = set(records[0].columns)
    limits = {c: max_key_block_records for c in KEY_BLOCKS if c in columns}
    common = over_held_values(reduce(DataFrame.unionByName, records), limits)
    for key, values in common.items():
        if values:  # the values stay in the plan, never in a log or the saved model
            log.info(
                "%s: %d value(s) on more than %d records: no block", key, len(values), limits[key]
            )

    def held(col: str) -> Any:
        return F.coalesce(F.col(col).cast("string").isin(common[col]), F.lit(False))

    return [
        df.select(
            *df.columns,
            *[F.soundex(F.col(name)).alias(key) for key, name in SOUNDS.items()],
            *[held(c).alias(_TOO_COMMON.format(c)) for c in common],
        )
        for df in records
    ]


def _block(cols: tuple[str, ...]) -> Any:
    """The Splink rule of one block: a block on one column of :data:`KEY_BLOCKS` leaves out
    the values :func:`with_blocking_keys` flagged; any other block is Splink's own."""
    from splink import block_on
    from splink.blocking_rule_library import CustomRule

    if len(cols) == 1 and cols[0] in KEY_BLOCKS:
        col, flag = cols[0], _TOO_COMMON.format(cols[0])
        # Plain SQL that DuckDB and Spark read alike (no quoted names: Spark reads backticks).
        return CustomRule(f"l.{col} = r.{col} AND NOT l.{flag} AND NOT r.{flag}")
    return block_on(*cols)


def prediction_blocking_rules(present: set[str]) -> list[Any]:
    """Splink blocking rules that choose the pairs to score, for records holding ``present``
    (with :func:`with_blocking_keys`' columns).

    Every rule whose columns the records hold (a first letter or a Soundex key reads its
    name): nothing depends on which dataset it is, only on the roles it has.
    """
    from splink.blocking_rule_library import And, CustomRule

    rules = [_block(cols) for cols in _blocks(_PREDICT_BLOCKS, present)]
    name_led = [_block(cols) for cols in _blocks(_NAME_LED_BLOCKS, present)]
    if {"given_name", "surname"} <= present:
        name_led.extend(CustomRule(sql) for sql in _SWAPPED_NAME_BLOCKS)
    if "dob" in present:
        name_led = [And(rule, CustomRule(_BIRTH_DATES_MAY_AGREE)) for rule in name_led]
    return rules + name_led


# EM estimates the m of every comparison but the blocked one from the blocked pairs, so a
# blocking column must not predict the others among non-matches. A name does: e-mail user
# names are built from names, and in a large file one name is shared by many people, so EM
# blocked on the name learns "same name family" as the match class (bench_er, 100,814
# records: m of a similar user name 0.25, of birth dates over ten years apart 0.44; pairwise
# precision 0.73). A shared e-mail or birth date carries no such bias; the name comes after.
_TRAINING_BLOCKS: tuple[tuple[str, ...], ...] = (
    ("dob",),
    ("email_canonical",),
    ("given_name", "surname"),
    ("phone",),
    ("postcode",),
)
_PRIOR_RULES: tuple[tuple[str, ...], ...] = (
    ("email_canonical",),
    ("given_name", "surname", "dob"),
    ("national_id",),
)


def _blocks(options: Sequence[tuple[str, ...]], present: set[str]) -> list[tuple[str, ...]]:
    # A block is usable when every column it reads (a first letter or a Soundex key reads its
    # name) is there.
    def column(expr: str) -> str:
        first_letter = _FIRST_LETTER.match(expr)
        return first_letter.group(1) if first_letter else SOUNDS.get(expr, expr)

    return [cols for cols in options if {column(c) for c in cols} <= present]


def score_pairs(
    spark: SparkSession,
    records: Sequence[DataFrame],
    *,
    settings: ModelSettings,
) -> ScoredPairs:
    """Trains a Fellegi-Sunter model on ``records`` and scores the blocked pairs.

    Args:
        spark: the session (built with :func:`splink_spark_conf` for fuzzy comparisons).
        records: one person-records DataFrame to deduplicate, or two to link.
        settings: seeds and bounds.

    Returns:
        Scored pairs above ``settings.candidate_match_probability`` and the trained model.

    Raises:
        ValueError: the records hold fewer than two comparable columns.
    """
    from splink import SettingsCreator

    if len(records) not in (1, 2):
        raise ValueError(f"expected one or two inputs, got {len(records)}")
    union = reduce(DataFrame.unionByName, records)
    present = present_columns(union)
    fuzzy = _jar_loaded(spark)
    if not fuzzy:
        log.warning(
            "Splink's similarity jar is not loaded; using built-in levenshtein only "
            "(build the session with cardlake.er.splink_spark_conf())"
        )
    comparisons = _comparisons(present, fuzzy=fuzzy)
    if len(comparisons) < 2:
        raise ValueError(f"need at least two comparable roles, found {sorted(present)}")
    creator = SettingsCreator(
        link_type="dedupe_only" if len(records) == 1 else "link_only",
        unique_id_column_name="uid",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=prediction_blocking_rules(present),
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
        max_iterations=settings.em_max_iterations,
        additional_columns_to_retain=[],
    )
    inputs = with_blocking_keys([df.drop("xref_keys", "source_dataset") for df in records])
    if settings.training_backend == "duckdb":
        trained = _train_in_duckdb(inputs, creator, present, settings=settings)
    else:
        trained = _train(
            _linker(spark, inputs, creator, settings, dialect=SPARK), present, settings=settings
        )
    trained = _with_prior_from_recall(trained, _held_together(inputs), settings=settings)
    dialect = scoring_dialect(spark, settings)
    linker = _linker(
        spark,
        inputs,
        _with_parameters(creator.create_settings_dict(dialect), trained),
        settings,
        dialect=dialect,
    )
    started = time.perf_counter()
    pairs_df = _predicted_pairs(spark, linker, settings, dialect=dialect)
    log.info("predict (%s): %.1fs", dialect, time.perf_counter() - started)
    model = linker.misc.save_model_to_json()
    return ScoredPairs(
        pairs_df=pairs_df,
        model=model,
        comparisons=tuple(sorted(present)),
        fuzzy=fuzzy,
    )


NEW_FLAG = "is_new"
"""Boolean column marking the records an incremental pass must match (see score_new_pairs)."""


def score_new_pairs(
    spark: SparkSession,
    records_df: DataFrame,
    *,
    model: dict[str, Any],
    settings: ModelSettings,
) -> DataFrame:
    """Scores only the pairs that hold at least one new record, with an already trained model.

    Incremental matching: the model (m, u, prior, comparisons, blocking rules) is the one a
    full resolution trained and saved; nothing is re-estimated. Every blocking rule gets
    ``AND (l.is_new OR r.is_new)``, so pairs of two known records (already resolved) are not
    scored again. Term frequencies still come from every record, as in the full pass. The
    pairs are scored by the backend whose SQL the model holds (the one the full pass scored
    with): a comparison's SQL is written in one dialect.

    Args:
        spark: the session (built with :func:`splink_spark_conf`).
        records_df: every person record, with a boolean :data:`NEW_FLAG` column.
        model: the Splink model saved by :func:`score_pairs` (``ScoredPairs.model``).
        settings: the lineage-break method and the candidate floor.

    Returns:
        ``(uid_l, uid_r, match_weight, match_probability)`` above the candidate floor.
    """
    dialect = model.get("sql_dialect", SPARK)
    flagged = dict(model)
    rules = []
    for rule in model["blocking_rules_to_generate_predictions"]:
        sql = rule["blocking_rule"] if isinstance(rule, dict) else str(rule)
        rules.append(
            {"blocking_rule": f"({sql}) AND (l.{NEW_FLAG} OR r.{NEW_FLAG})", "sql_dialect": dialect}
        )
    flagged["blocking_rules_to_generate_predictions"] = rules
    flagged["link_type"] = "dedupe_only"
    inputs = with_blocking_keys([records_df.drop("xref_keys", "source_dataset")])
    linker = _linker(spark, inputs, flagged, settings, dialect=dialect)
    return _predicted_pairs(spark, linker, settings, dialect=dialect)


def pairs_with_levels(
    spark: SparkSession,
    records: Sequence[DataFrame],
    *,
    model: dict[str, Any],
    settings: ModelSettings,
) -> pd.DataFrame:
    """Every blocked pair of ``records`` scored by a trained model, with the level each
    comparison put it in: what a person reads to see why a pair was linked or left apart.

    Scored in DuckDB, like :func:`score_pairs` on one machine, and returned to the driver: for
    files that fit there (a benchmark's, a test's), not for a whole lake.

    Args:
        spark: the session the records belong to.
        records: the person records :func:`score_pairs` was given (one file, or two to link).
        model: the Splink model it saved (``ScoredPairs.model``).
        settings: the lineage-break method.

    Returns:
        ``uid_l``, ``uid_r``, ``match_probability`` and one ``gamma_<comparison>`` column per
        comparison (its level's comparison vector value, -1 where a side is missing).
    """
    retained = {
        **model,
        "retain_intermediate_calculation_columns": True,
        "retain_matching_columns": True,
    }
    inputs = with_blocking_keys([df.drop("xref_keys", "source_dataset") for df in records])
    linker = _linker(spark, inputs, retained, settings, dialect=DUCKDB)
    predictions = linker.inference.predict()
    scored = predictions.as_pandas_dataframe()
    predictions.drop_table_from_database_and_remove_from_cache()
    gammas = [c for c in scored.columns if c.startswith("gamma_")]
    return scored[["uid_l", "uid_r", "match_probability", *gammas]]


SPARK, DUCKDB = "spark", "duckdb"


def scoring_dialect(spark: SparkSession, settings: ModelSettings) -> str:
    """``"duckdb"`` or ``"spark"``: where :func:`score_pairs` scores (see ``scoring_backend``).

    Raises:
        ValueError: an unknown ``scoring_backend``.
    """
    backend = settings.scoring_backend
    if backend == "auto":
        return DUCKDB if (spark.sparkContext.master or "").startswith("local") else SPARK
    if backend not in (SPARK, DUCKDB):
        raise ValueError(f"scoring_backend must be auto, spark or duckdb, got {backend!r}")
    return backend


def _predicted_pairs(
    spark: SparkSession, linker: Any, settings: ModelSettings, *, dialect: str
) -> DataFrame:
    """The linker's scored pairs above the candidate floor, as ``ScoredPairs.pairs_df``."""
    predictions = linker.inference.predict(
        threshold_match_probability=settings.candidate_match_probability
    )
    if dialect == DUCKDB:
        scored = spark.createDataFrame(
            predictions.as_pyarrow_table().select(
                ["uid_l", "uid_r", "match_weight", "match_probability"]
            )
        )
        predictions.drop_table_from_database_and_remove_from_cache()
    else:
        scored = predictions.as_spark_dataframe()
    return scored.select(
        F.col("uid_l").cast("string"),
        F.col("uid_r").cast("string"),
        F.col("match_weight").cast("double").alias("match_weight"),
        F.col("match_probability").cast("double").alias("match_probability"),
    ).localCheckpoint(eager=True)


def _linker(
    spark: SparkSession,
    inputs: Sequence[DataFrame],
    settings_obj: Any,
    settings: ModelSettings,
    *,
    dialect: str,
) -> Any:
    """A Splink linker over ``inputs``: on Spark, or in DuckDB with the records brought to the
    driver through Arrow."""
    from splink import DuckDBAPI, Linker, SparkAPI

    db_api: Any
    if dialect == DUCKDB:
        db_api = DuckDBAPI()
        registered = [db_api.register(df.toArrow()) for df in inputs]
    else:
        db_api = SparkAPI(spark_session=spark, break_lineage_method=settings.break_lineage_method)
        registered = [db_api.register(df) for df in inputs]
    return Linker(
        registered if len(registered) > 1 else registered[0],
        settings_obj,
        log_level=logging.WARNING,
    )


def _train_in_duckdb(
    inputs: Sequence[DataFrame], creator: Any, present: set[str], *, settings: ModelSettings
) -> dict[str, Any]:
    # EM iterates over the blocked pairs tens of times: in Spark every round is a job with
    # scheduling overhead that dwarfs the arithmetic, in DuckDB it is milliseconds. Training
    # sees a seeded sample bounded by max_training_records; scoring is score_pairs' choice.
    from splink import DuckDBAPI, Linker

    total = sum(df.count() for df in inputs)
    share = min(1.0, settings.max_training_records / max(total, 1))
    frames = []
    for df in inputs:
        sampled = (
            df
            if share >= 1.0
            else df.where(
                (F.abs(F.xxhash64("uid", F.lit(settings.seed))) % 1_000_000)
                < int(share * 1_000_000)
            )
        )
        frames.append(sampled.toPandas())
    db_api = DuckDBAPI()
    registered = [db_api.register(pdf) for pdf in frames]
    linker = Linker(
        registered if len(registered) > 1 else registered[0], creator, log_level=logging.WARNING
    )
    return _train(linker, present, settings=settings)


M_U_FLOOR = 1e-6
"""The least m or u probability expectation maximisation may give a level: the one Splink
itself gives a level EM never observes (its "level not observed" m and u read as 1e-6).
Training reads at most ``max_training_records`` records (200,000 by default), in clusters of a
few records, so an EM block holds well under a million matching pairs: an m below the floor
stands for less than one matching pair in its level, which no data can tell from zero."""


_EM_SWAP = threading.Lock()


@contextmanager
def _em_floored(floor: float = M_U_FLOOR) -> Iterator[None]:
    """Splink's expectation maximisation with every level's new m and u kept at ``floor`` or
    above.

    Splink's maximisation step is the unsmoothed maximum-likelihood one: a level whose blocked
    pairs all look like non-matches (an unusual agreement pattern, or one only namesakes
    show) has its m multiplied by a tiny factor every iteration, and within Splink's
    iterations it reaches zero or a subnormal number, which Splink 5 refuses (``ValueError``
    below 1e-300) and so fails the whole run. Splink has no option for it: its
    ``fix_m_probability`` fixes a level named before training, and EM's arguments fix every m
    or none. The floor is applied every iteration, after Splink computes the proportions, so a
    level that EM estimates as impossible among matches gets the m Splink gives a level it
    never sees, and every other estimate is untouched (the floored level's m makes its
    comparison's levels sum to at most ``floor`` more than one; Splink does not require them to
    sum to one). Splink's module function is swapped for the duration and restored, under a
    lock: two trainings in one process's threads take turns rather than restore each other's
    swap.
    """
    from splink.internals import expectation_maximisation as em

    with _EM_SWAP:
        proportions = em.compute_proportions_for_new_parameters
        raised: set[tuple[str, int]] = set()

        def floored(df_params: Any) -> list[dict[str, Any]]:
            records: list[dict[str, Any]] = proportions(df_params)
            for record in records:
                if record["output_column_name"] == "_probability_two_random_records_match":
                    continue
                for key in ("m_probability", "u_probability"):
                    value = record[key]
                    if value is None or value >= floor:
                        continue
                    record[key] = floor
                    level = (record["output_column_name"], record["comparison_vector_value"])
                    # u is fixed in training (sampled), so EM's u proportions are discarded.
                    if key == "m_probability" and level not in raised:
                        raised.add(level)
                        log.info(
                            "%s level %d: m_probability %.3g raised to %g", *level, value, floor
                        )
            return records

        em.compute_proportions_for_new_parameters = floored
        try:
            yield
        finally:
            em.compute_proportions_for_new_parameters = proportions


def _train(linker: Any, present: set[str], *, settings: ModelSettings) -> dict[str, Any]:
    from splink import block_on

    started = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal started
        log.info("%s: %.1fs", what, time.perf_counter() - started)
        started = time.perf_counter()

    prior_rules = [block_on(*cols) for cols in _blocks(_PRIOR_RULES, present)]
    if prior_rules:
        linker.training.estimate_probability_two_random_records_match(
            prior_rules, recall=settings.prior_recall
        )
        lap("prior")
    linker.training.estimate_u_using_random_sampling(
        max_pairs=settings.u_max_pairs, seed=settings.seed
    )
    lap("u by random sampling")
    for cols in _blocks(_TRAINING_BLOCKS, present)[:2]:
        with _em_floored():
            linker.training.estimate_parameters_using_expectation_maximisation(
                _block(cols), estimate_without_term_frequencies=True
            )
        lap(f"EM blocked on {cols}")
    model: dict[str, Any] = linker.misc.save_model_to_json()
    return model


# The comparison whose first level (exact agreement) a prior rule's column agrees on.
_RULE_COMPARISON = {
    "email_canonical": "email_canonical",
    "given_name": "name",
    "surname": "name",
    "dob": "dob",
    "national_id": "national_id",
}


def _held_together(inputs: Sequence[DataFrame]) -> dict[str, float]:
    """Per comparison of a prior rule: the share of record pairs whose two records both hold
    it."""
    held = {
        "email_canonical": F.col("email_canonical").isNotNull(),
        "name": F.col("given_name").isNotNull() & F.col("surname").isNotNull(),
        "dob": F.col("dob").isNotNull(),
        "national_id": F.col("national_id").isNotNull(),
    }
    shares = []
    for df in inputs:
        row = df.select(
            F.count(F.lit(1)).alias("n"),
            *[F.count(F.when(cond, 1)).alias(name) for name, cond in held.items()],
        ).first()
        assert row is not None
        shares.append({name: row[name] / max(row["n"], 1) for name in held})
    first, second = shares[0], shares[-1]
    return {name: first[name] * second[name] for name in held}


def _with_prior_from_recall(
    model: dict[str, Any], held: dict[str, float], *, settings: ModelSettings
) -> dict[str, Any]:
    """The trained model with its prior re-estimated from the deterministic rules' own recall.

    Splink estimates the prior from the pairs the deterministic rules find, divided by a
    recall it is told (``settings.prior_recall``). A fixed recall is wrong where fields are
    missing: a rule cannot fire on a pair missing its column, and in people_maker's sparse
    profile the prior came out at half the truth (8.4e-4 against 1.8e-3), so every pair's
    probability was too low. The recall here is the model's: each rule's m of exact agreement
    on its columns times the share of pairs holding them, rules taken as independent.

    The u probabilities are left as sampled, though random pairs include the matches and in
    a file of a few thousand records the matches make most of a strong level's sampled u
    (the same full name in the sparse profile, 500 people: 7.4e-4 sampled, 0 among
    non-matches). Taking them out with the model's m raised the sparse profile's F1 from
    0.94 to 0.97 but lowered the generator's world's (10,078 records) from 0.9998 to 0.9955:
    it strengthened the household levels too, and father and son of one name under one roof
    were linked.
    """
    comparisons = {c["output_column_name"]: c for c in model["comparisons"]}

    def m_exact(name: str) -> float | None:
        comparison = comparisons.get(name)
        if comparison is None:
            return None
        first = next(lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level"))
        return first.get("m_probability")

    rules = _blocks(_PRIOR_RULES, {c for c in _RULE_COMPARISON if held.get(_RULE_COMPARISON[c])})
    if not rules:  # no rule estimated the prior: Splink's default stands
        return model
    missed = 1.0
    for cols in rules:
        fires = 1.0
        for name in {_RULE_COMPARISON[c] for c in cols}:
            m = m_exact(name)
            fires *= (m if m is not None else 0.0) * held.get(name, 0.0)
        missed *= 1.0 - fires
    recall = min(1.0, max(1.0 - missed, MIN_PRIOR_RECALL))
    prior = min(model["probability_two_random_records_match"] * settings.prior_recall / recall, 0.5)
    log.info("prior %.3g (deterministic rules' recall %.2f)", prior, recall)
    return {**model, "probability_two_random_records_match": prior}


def _with_parameters(target: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
    # Both dicts come from one SettingsCreator, so comparisons and levels align by position;
    # only the estimated parameters move across dialects.
    out = dict(target)
    out["probability_two_random_records_match"] = trained["probability_two_random_records_match"]
    comparisons = []
    for mine, theirs in zip(target["comparisons"], trained["comparisons"], strict=True):
        levels = []
        for level, fitted in zip(
            mine["comparison_levels"], theirs["comparison_levels"], strict=True
        ):
            level = dict(level)
            for key in ("m_probability", "u_probability"):
                if key in fitted:
                    level[key] = fitted[key]
            levels.append(level)
        comparisons.append({**mine, "comparison_levels": levels})
    out["comparisons"] = comparisons
    return out


def probability_from_weight(weight: float) -> float:
    """Splink's match probability for a match weight (log2 Bayes factor incl. prior)."""
    return 1.0 / (1.0 + math.pow(2.0, -weight))
