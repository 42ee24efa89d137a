"""What makes two person records two people, whatever else they share.

One definition for the matcher's two uses: a shared mailbox is no proof of one person when the
records conflict (:mod:`cardlake.er.deterministic`), and a cluster is split where links bridged
records whose birth dates conflict (:mod:`cardlake.er.resolve`). And what makes a shared
identifier no identity at all: :data:`MAX_RECORDS_PER_IDENTIFIER`.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

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
    two_people = (
        "email_canonical_l = email_canonical_r AND "
        + given_names_apart_sql("given_name_l", "surname_l", "given_name_r", "surname_r")
    )
    if with_dob:
        two_people += " AND NOT coalesce(dob_l = dob_r, false)"
    return two_people


def known(condition: Column) -> Column:
    """``condition``, with unknown (a value missing) taken as no conflict."""
    return F.coalesce(condition, F.lit(False))
