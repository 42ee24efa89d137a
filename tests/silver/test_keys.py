"""Stable customer keys: inheritance across runs, merges, splits, and the crosswalk's history."""

from __future__ import annotations

import hashlib

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from cardlake.silver.keys import assign_keys, updated_crosswalk

MEMBERS = "cluster string, source string, source_record_id string"
PREVIOUS = "source string, source_record_id string, customer_key string"


def fresh(ref: str) -> str:
    """The documented key of a never-seen cluster: CK + 10 hex of SHA-256 of its smallest ref."""
    return "CK" + hashlib.sha256(ref.encode()).hexdigest()[:10].upper()


def keys_of(df) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {r.source_record_id: r.customer_key for r in df.collect()}


def test_first_run_keys_clusters_by_their_smallest_record(spark: SparkSession) -> None:
    members = spark.createDataFrame(
        [("c1", "crm", "B"), ("c1", "fin", "A"), ("c2", "crm", "C")], MEMBERS
    )
    keyed, events = assign_keys(members, None)
    assert keys_of(keyed) == {"B": fresh("crm:B"), "A": fresh("crm:B"), "C": fresh("crm:C")}
    assert events.count() == 0


def test_rerun_with_same_clusters_keeps_every_key(spark: SparkSession) -> None:
    members = spark.createDataFrame(
        [("x9", "crm", "A"), ("x9", "fin", "F"), ("y3", "crm", "B")], MEMBERS
    )
    previous = spark.createDataFrame(
        [("crm", "A", "CK-OLD-1"), ("fin", "F", "CK-OLD-1"), ("crm", "B", "CK-OLD-2")], PREVIOUS
    )
    keyed, events = assign_keys(members, previous)
    assert keys_of(keyed) == {"A": "CK-OLD-1", "F": "CK-OLD-1", "B": "CK-OLD-2"}
    assert events.count() == 0


def test_new_record_joins_an_existing_customer_without_rekeying(spark: SparkSession) -> None:
    # The new record sorts before the old ones: the key must still be inherited, not rehashed.
    members = spark.createDataFrame(
        [("k", "crm", "Z"), ("k", "demo", "AAA"), ("m", "crm", "N")], MEMBERS
    )
    previous = spark.createDataFrame([("crm", "Z", "CK-Z")], PREVIOUS)
    keyed, _ = assign_keys(members, previous)
    assert keys_of(keyed) == {"Z": "CK-Z", "AAA": "CK-Z", "N": fresh("crm:N")}


def test_merge_keeps_the_larger_key_and_records_the_retired_one(spark: SparkSession) -> None:
    members = spark.createDataFrame(
        [("m", "crm", "A"), ("m", "fin", "F"), ("m", "crm", "B")], MEMBERS
    )
    previous = spark.createDataFrame(
        [("crm", "A", "CK-1"), ("fin", "F", "CK-1"), ("crm", "B", "CK-2")], PREVIOUS
    )
    keyed, events = assign_keys(members, previous)
    assert set(keys_of(keyed).values()) == {"CK-1"}
    expected = spark.createDataFrame(
        [("merge", "CK-1", "CK-2", 1)],
        "event string, customer_key string, other_key string, records long",
    )
    assert_df_equality(events, expected, ignore_nullable=True)


def test_split_keeps_the_key_with_the_larger_part(spark: SparkSession) -> None:
    members = spark.createDataFrame(
        [("p", "crm", "A"), ("p", "fin", "F"), ("q", "crm", "B")], MEMBERS
    )
    previous = spark.createDataFrame(
        [("crm", "A", "CK-1"), ("fin", "F", "CK-1"), ("crm", "B", "CK-1")], PREVIOUS
    )
    keyed, events = assign_keys(members, previous)
    assert keys_of(keyed) == {"A": "CK-1", "F": "CK-1", "B": fresh("crm:B")}
    expected = spark.createDataFrame(
        [("split", fresh("crm:B"), "CK-1", 1)],
        "event string, customer_key string, other_key string, records long",
    )
    assert_df_equality(events, expected, ignore_nullable=True)


def test_a_split_off_part_never_gets_the_key_it_split_from(spark: SparkSession) -> None:
    # Two people were keyed as one: fresh("crm:A"), the hash of the merged cluster's smallest
    # record. A resolves apart from the larger part, which keeps the key by majority; the
    # part holding crm:A must not get the same key back from its own smallest record.
    merged = fresh("crm:A")
    members = spark.createDataFrame(
        [("small", "crm", "A"), ("big", "fin", "F"), ("big", "fin", "G")], MEMBERS
    )
    previous = spark.createDataFrame(
        [("crm", "A", merged), ("fin", "F", merged), ("fin", "G", merged)], PREVIOUS
    )
    keyed, events = assign_keys(members, previous)
    got = keys_of(keyed)
    assert got["F"] == got["G"] == merged
    assert got["A"] != merged and got["A"].startswith("CK") and len(got["A"]) == 12
    assert [(r.event, r.customer_key, r.other_key) for r in events.collect()] == [
        ("split", got["A"], merged)
    ]


def test_crosswalk_closes_changed_rows_and_keeps_history(spark: SparkSession) -> None:
    schema = (
        "source string, source_record_id string, customer_key string, match_method string, "
        "match_probability double, valid_from string, valid_to string, is_current boolean"
    )
    previous = spark.createDataFrame(
        [
            ("crm", "A", "CK-1", "deterministic", 1.0, "2024-01", None, True),
            ("crm", "B", "CK-2", "singleton", None, "2024-01", None, True),
        ],
        schema,
    )
    keyed = spark.createDataFrame(
        [("crm", "A", "CK-1"), ("crm", "B", "CK-1"), ("crm", "C", "CK-3")], PREVIOUS
    )
    methods = spark.createDataFrame(
        [
            ("crm", "A", "deterministic", 1.0),
            ("crm", "B", "probabilistic", 0.97),
            ("crm", "C", "singleton", None),
        ],
        "source string, source_record_id string, match_method string, match_probability double",
    )
    got = updated_crosswalk(keyed, previous, month="2024-02", methods_df=methods)
    expected = spark.createDataFrame(
        [
            ("crm", "A", "CK-1", "deterministic", 1.0, "2024-01", None, True),
            ("crm", "B", "CK-2", "singleton", None, "2024-01", "2024-02", False),
            ("crm", "B", "CK-1", "probabilistic", 0.97, "2024-02", None, True),
            ("crm", "C", "CK-3", "singleton", None, "2024-02", None, True),
        ],
        schema,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
