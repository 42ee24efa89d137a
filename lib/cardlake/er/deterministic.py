"""Deterministic pass: records sharing a strong identifier are the same person.

Strong identifiers are the ones two different people practically never share: a
cross-reference key from another system, a national id, and the canonical e-mail mailbox.
Phone numbers and addresses are deliberately not here: households share them, so they are
evidence for the probabilistic pass, not proof. A mailbox is one account but not always one
person (a couple's family mailbox): two records sharing one whose birth dates or given names
are two people's (:mod:`cardlake.er.conflicts`) are not linked here; the probabilistic pass
weighs that pair with the rest of the two records. An identifier held by more than
:data:`~cardlake.er.conflicts.MAX_RECORDS_PER_IDENTIFIER` records is a filler and links nobody:
the records come here without it (:func:`cardlake.er.conflicts.without_fillers`).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cardlake.er.conflicts import birth_dates_apart, given_names_apart, known

STRONG_IDENTIFIERS = ("xref_keys", "national_id", "email_canonical")
MAILBOX = "e:"  # the kind prefix of an e-mail key
# What a mailbox's records are checked against each other on.
_CHECKED = ("dob", "given_name", "surname")


def strong_keys(records_df: DataFrame) -> DataFrame:
    """``(uid, source_dataset, dob, given_name, surname, key)``: every strong identifier of
    every record, typed by kind, with what a shared mailbox is checked on."""
    keys = F.concat(
        F.transform(F.col("xref_keys"), lambda k: F.concat(F.lit("x:"), k)),
        F.array_compact(
            F.array(
                F.concat(F.lit("n:"), F.col("national_id")),
                F.concat(F.lit("e:"), F.col("email_canonical")),
            )
        ),
    )
    return records_df.select("uid", "source_dataset", *_CHECKED, F.explode(keys).alias("key"))


def _conflicts_with_anchor() -> Column:
    # A record against its key's anchor (the columns of :func:`deterministic_edges`).
    return known(birth_dates_apart(F.col("dob"), F.col("anchor_dob"))) | known(
        given_names_apart("given_name", "surname", "anchor_given_name", "anchor_surname")
    )


def deterministic_edges(
    records_df: DataFrame,
    *,
    link_only: bool = False,
) -> DataFrame:
    """Edges ``(uid_l, uid_r)`` joining every record to the first record sharing a key.

    A key held by n records gives n - 1 edges (a star on the smallest uid), not n² pairs, so a
    popular key cannot blow up the edge list; connected components turns stars into clusters.
    A mailbox's record that conflicts with the anchor (a spouse's) gets no edge, even where it
    agrees with another record of the mailbox (the spouse's other record): the probabilistic
    pass links those two.

    Args:
        records_df: person records (:data:`cardlake.er.records.PERSON_RECORD_COLUMNS`),
            without fillers (:func:`cardlake.er.conflicts.without_fillers`).
        link_only: use only keys held by records of more than one input dataset.
    """
    keys = strong_keys(records_df)
    groups = (
        keys.groupBy("key")
        .agg(
            F.min("uid").alias("anchor"),
            *[F.min_by(c, "uid").alias(f"anchor_{c}") for c in _CHECKED],
            F.countDistinct("source_dataset").alias("n_datasets"),
            F.count(F.lit(1)).alias("n_records"),
        )
        .where(F.col("n_records") > 1)
    )
    if link_only:
        groups = groups.where(F.col("n_datasets") > 1)
    edges = keys.join(groups, on="key", how="inner").where(
        (F.col("uid") != F.col("anchor"))
        & ~(F.col("key").startswith(MAILBOX) & _conflicts_with_anchor())
    )
    return edges.select(F.col("anchor").alias("uid_l"), F.col("uid").alias("uid_r")).dropDuplicates(
        ["uid_l", "uid_r"]
    )  # one record can share several keys with its anchor
