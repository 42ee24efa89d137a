"""Term frequencies among other people's records (issue 17).

A term-frequency level's Bayes factor is its m over the chance that someone else's record
holds the value; Splink counts the pair's own records in that chance. The figures below are
worked by hand from the docstring of the function under test.
"""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from cardlake.er.probabilistic import ModelSettings, _other_people_frequencies

PRIOR, M, U = 0.1, 0.8, 0.05


def _model() -> dict[str, object]:
    level = {"tf_adjustment_column": "name_concat", "m_probability": M, "u_probability": U}
    return {
        "probability_two_random_records_match": PRIOR,
        "comparisons": [{"comparison_levels": [{"is_null_level": True}, level]}],
    }


def test_a_name_is_counted_without_its_own_persons_records(spark: SparkSession) -> None:
    names = ["anna schmidt"] * 2 + ["john smith"] * 4 + ["paul meyer", None]
    records = spark.createDataFrame([(n,) for n in names], "name_concat string")
    tables = _other_people_frequencies([records], _model(), settings=ModelSettings())
    got = {r["name_concat"]: r["tf_name_concat"] for r in tables["name_concat"].collect()}
    # 8 records, 7 with a name, 28 pairs: a record's own person has 2 * 0.1 * 28 / 8 = 0.7
    # other records, 7/8 of them with a name, 0.8 of those agreeing: 1 + 0.49 = 1.49 records
    # of its own among the value's count.
    assert got == pytest.approx(
        {
            "anna schmidt": (2 - 1.49) / 7,  # Splink: 2/7
            "john smith": (4 - 1.49) / 7,  # Splink: 4/7
            # Held by nobody else: the level's u among non-matches, 0.05 - 0.1 * 0.8 < 0, so
            # one of the 28 pairs, over 1 - prior (Splink: 1/7).
            "paul meyer": (1 / 28) / (1 - PRIOR),
        }
    )
