"""Cluster metrics on hand-computed clusterings, and connected components."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from cardlake.er import connected_components, evaluate_clusters


def test_pairwise_and_bcubed_by_hand(spark: SparkSession) -> None:
    # predicted a={1,2,3} b={4,5} c={6}; true x={1,2} y={3,4,5} z={6}; 7 has no truth.
    predicted = spark.createDataFrame(
        [("1", "a"), ("2", "a"), ("3", "a"), ("4", "b"), ("5", "b"), ("6", "c"), ("7", "a")],
        "record_id string, entity_id string",
    )
    truth = spark.createDataFrame(
        [("1", "x"), ("2", "x"), ("3", "y"), ("4", "y"), ("5", "y"), ("6", "z"), ("8", None)],
        "record_id string, true_id string",
    )
    m = evaluate_clusters(predicted, truth.where("true_id is not null"))
    assert (m.records, m.predicted_pairs, m.true_pairs, m.correct_pairs) == (6, 4, 4, 2)
    assert m.pairwise_precision == pytest.approx(0.5)
    assert m.pairwise_recall == pytest.approx(0.5)
    assert m.pairwise_f1 == pytest.approx(0.5)
    assert m.bcubed_precision == pytest.approx(7 / 9)
    assert m.bcubed_recall == pytest.approx(7 / 9)


def test_all_singletons_have_no_predicted_pairs(spark: SparkSession) -> None:
    predicted = spark.createDataFrame(
        [("1", "1"), ("2", "2"), ("3", "3")], "record_id string, entity_id string"
    )
    truth = spark.createDataFrame(
        [("1", "x"), ("2", "x"), ("3", "y")], "record_id string, true_id string"
    )
    m = evaluate_clusters(predicted, truth)
    assert (m.predicted_pairs, m.true_pairs, m.correct_pairs) == (0, 1, 0)
    assert (m.pairwise_precision, m.pairwise_recall, m.pairwise_f1) == (1.0, 0.0, 0.0)
    assert m.bcubed_precision == pytest.approx(1.0)
    assert m.bcubed_recall == pytest.approx((0.5 + 0.5 + 1) / 3)


def test_a_record_the_prediction_lacks_is_a_missed_singleton(spark: SparkSession) -> None:
    # truth x={1,2,3}; predicted a={1,2}, record 3 lost, record 4 unknown to the truth.
    predicted = spark.createDataFrame(
        [("1", "a"), ("2", "a"), ("4", "a")], "record_id string, entity_id string"
    )
    truth = spark.createDataFrame(
        [("1", "x"), ("2", "x"), ("3", "x")], "record_id string, true_id string"
    )
    m = evaluate_clusters(predicted, truth)
    assert (m.records, m.missing_records, m.unknown_records) == (2, 1, 1)
    assert (m.predicted_pairs, m.true_pairs, m.correct_pairs) == (1, 3, 1)
    assert (m.pairwise_precision, m.pairwise_recall) == (1.0, pytest.approx(1 / 3))
    assert m.bcubed_precision == pytest.approx(1.0)
    assert m.bcubed_recall == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)


def test_connected_components_chains_stars_and_self_loops(spark: SparkSession) -> None:
    chain = [(f"c{i}", f"c{i + 1}") for i in range(7)]  # diameter 7: needs several rounds
    edges = spark.createDataFrame(
        [("b", "a"), ("b", "c"), ("e", "d"), ("f", "f"), *chain, ("c7", "c3")],
        "uid_l string, uid_r string",
    )
    expected = spark.createDataFrame(
        [
            ("a", "a"),
            ("b", "a"),
            ("c", "a"),
            ("d", "d"),
            ("e", "d"),
            *[(f"c{i}", "c0") for i in range(8)],
        ],
        "node string, component string",
    )
    actual = connected_components(edges)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def _split(
    spark: SparkSession, links: list[tuple[str, str, float]], dobs: dict[str, str | None]
) -> dict[str, str]:
    from cardlake.er.resolve import without_bridges

    links_df = spark.createDataFrame(links, "uid_l string, uid_r string, match_probability double")
    records = spark.createDataFrame(sorted(dobs.items()), "uid string, dob string")
    got = without_bridges(connected_components(links_df), links_df, records).collect()
    return {r["node"]: r["component"] for r in got}


def test_a_bridge_between_two_birth_dates_is_cut_at_its_weakest_link(spark: SparkSession) -> None:
    # A household: Lucy (a1, a2) and David (b1, b2); x is David's second sign-up without a
    # birth date, linked to David strongly and to Lucy's record weakly (the bridge).
    links = [("a1", "a2", 1.0), ("b1", "b2", 0.999), ("b1", "x", 0.99999), ("a2", "x", 0.53)]
    dobs = {"a1": "1993-03-03", "a2": None, "b1": "1966-05-14", "b2": "1966-05-41", "x": None}
    assert _split(spark, links, dobs) == {"a1": "a1", "a2": "a1", "b1": "b1", "b2": "b1", "x": "b1"}


def test_birth_dates_a_typo_or_a_swap_apart_stay_one_person(spark: SparkSession) -> None:
    # One person's 1982-07-12 read with day and month the other way round (four digits
    # differ), with a wrong year digit, and with two digits transposed: each pair is one person
    links = [("a", "b", 0.9), ("a", "c", 0.9), ("a", "d", 0.9), ("c", "d", 0.95), ("b", "e", 0.9)]
    dobs = {"a": "1982-07-12", "b": "1982-12-07", "c": "1983-07-12", "d": "1982-07-21", "e": None}
    assert set(_split(spark, links, dobs).values()) == {"a"}
