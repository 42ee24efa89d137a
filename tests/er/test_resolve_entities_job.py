"""The generic entry point on a file it has never seen, with its own column names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from tests.infra.services import load_job

# Twenty people; seven of them appear twice, spelt differently (column "who" is the truth).
PEOPLE = Path(__file__).parent / "data" / "people.csv"
MAPPING = Path(__file__).parent / "data" / "people_mapping.yaml"


@pytest.mark.slow
def test_dedupes_an_unseen_csv_with_its_own_mapping(spark: SparkSession, tmp_path: Path) -> None:
    people, mapping = PEOPLE, MAPPING
    out = tmp_path / "entities.csv"

    code = load_job("resolve_entities.py").main(
        ["--env", "test", "--input", str(people), "--mapping", str(mapping), "--output", str(out)]
    )

    assert code == 0
    got = pd.read_csv(out, dtype={"record_id": str, "entity_id": str})
    assert list(got.columns) == ["record_id", "entity_id", "match_probability"]
    truth = pd.read_csv(people, dtype=str)[["ref", "who"]]
    assert sorted(got["record_id"]) == sorted(truth["ref"])  # one row per input record
    merged = got.merge(truth, left_on="record_id", right_on="ref", how="inner")
    # Same person <=> same entity: the partitions are equal.
    by_entity = {frozenset(g["who"]) for _, g in merged.groupby("entity_id")}
    by_person = {frozenset(g["entity_id"]) for _, g in merged.groupby("who")}
    assert all(len(s) == 1 for s in by_entity), merged.sort_values("entity_id")
    assert all(len(s) == 1 for s in by_person), merged.sort_values("who")
    linked = merged.groupby("who")["record_id"].transform("count") > 1
    assert merged.loc[linked, "match_probability"].notna().all()
    assert merged.loc[~linked, "match_probability"].isna().all()


def test_bad_mapping_is_a_usage_error(spark: SparkSession, tmp_path: Path) -> None:
    people = PEOPLE
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("given_name: forename\nshoe_size: zip\n")
    code = load_job("resolve_entities.py").main(
        [
            "--env",
            "test",
            "--input",
            str(people),
            "--mapping",
            str(mapping),
            "--output",
            str(tmp_path / "out.csv"),
        ]
    )
    assert code == 2
