"""The analysts' SQL files give the same answers on DuckDB (the report's charts) as on Spark
(``make sql``), on the pipeline's lake; and each has its chart."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from cardlake.config import load_config
from cardlake.serve import analytics
from cardlake.serve.lake import Lake

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# approximate percentiles differ between engines by design; everything else must match
APPROXIMATE = {"p25_usd", "median_usd", "p75_usd"}


@pytest.fixture(scope="module")
def pipeline_lake(request: pytest.FixtureRequest) -> Path:
    given = os.environ.get("CARDLAKE_SERVE_TEST_LAKE")
    if given:
        return Path(given)
    return Path(request.getfixturevalue("built_lake").lake_root)


def _rows(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    def norm(v: Any) -> Any:
        if isinstance(v, float):
            return None if math.isnan(v) else round(v, 2)
        if hasattr(v, "isoformat"):
            return v.isoformat()[:10]
        return v

    return sorted((tuple(norm(v) for v in r.values()) for r in records), key=repr)


@pytest.mark.parametrize("name", sorted(analytics.queries()))
def test_duckdb_answers_equal_spark(
    name: str, pipeline_lake: Path, spark: Any, clean_catalog: None
) -> None:
    from cardlake.tables import Tables

    sql = analytics.queries()[name]
    cfg = load_config("test", overrides={"paths.lake_root": str(pipeline_lake)})
    Tables.from_config(spark, cfg)
    spark_df = spark.sql(sql).toPandas()
    duck_df = analytics.run_sql(Lake(str(pipeline_lake)), sql)
    assert list(duck_df.columns) == list(spark_df.columns)
    keep = [c for c in spark_df.columns if c not in APPROXIMATE]
    assert len(duck_df) == len(spark_df) > 0
    assert _rows(duck_df[keep].to_dict("records")) == _rows(spark_df[keep].to_dict("records"))
    assert name in analytics.CHARTS
