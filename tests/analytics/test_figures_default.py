"""The analysts' figures on the default data (issue 15): the world `make run` builds (2,000
customers, 18 months, the `local` settings), run through the whole pipeline, and the segment,
CLV and note-topic figures against the generator's truth printed and asserted at the goals.

The test lake's versions of these checks (``test_figures.py``, ``test_clv.py``) run in
`make test`; this one reads the default world (``default_world`` in ``tests/lake_fixture.py``:
built once per session, minutes: the length of `make run`) and so runs in `make test-heavy`. To
check a lake `make run` already built instead, point ``CARDLAKE_DEFAULT_LAKE`` at the folder
holding its ``lake/`` and ``data/`` (the project root).
"""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from cardlake.config import Config
from cardlake.ml import evaluate
from cardlake.tables import Tables
from tests.analytics import figures
from tests.analytics.figures import ARI_GOAL, TOPIC_ACCURACY_GOAL
from tests.lake_fixture import BuiltLake

pytestmark = [pytest.mark.heavy, pytest.mark.slow]


@pytest.fixture(scope="module")
def default_lake(spark: SparkSession, default_world: BuiltLake) -> tuple[Config, Tables]:
    return default_world.cfg, default_world.tables(spark)


def test_segments_match_the_archetypes_on_the_default_data(spark, default_lake):
    cfg, tables = default_lake
    found = figures.segments_against_archetypes(spark, cfg, tables)
    assert found["archetype_customers"] > 1000  # the default world, not the test lake
    assert found["archetype_ari"] >= ARI_GOAL
    assert set(evaluate.SEGMENT_ARCHETYPE) <= figures.segment_names(tables)


def test_note_topics_beat_the_agents_category_on_the_default_data(spark, default_lake):
    cfg, tables = default_lake
    found = figures.note_topics_against_truth(spark, cfg, tables)
    assert found["topic_accuracy"] >= TOPIC_ACCURACY_GOAL
    assert found["topic_accuracy"] > found["agent_topic_accuracy"]


def test_clv_beats_the_naive_estimate_on_the_default_data(default_lake):
    cfg, tables = default_lake
    metrics = figures.clv_holdout(cfg, tables)
    assert metrics["holdout_customers"] > 1000
    assert metrics["model_mae_usd"] < metrics["naive_mae_usd"]
    assert abs(metrics["model_total_error_pct"]) < 10
