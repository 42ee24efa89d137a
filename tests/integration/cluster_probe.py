"""A small spark-submit job for tests/integration/test_cluster.py: where the executors' Python
and ``cardlake`` come from, and a Delta table written and read back through them.

    cluster_probe.py <result.json> <table folder>
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator

from pyspark.sql import SparkSession


def _where(_: Iterable[int]) -> Iterator[tuple[str, str]]:
    import cardlake  # from the shipped wheel: nothing else on the executors' path has it first

    yield sys.prefix, str(cardlake.__file__)


def main(result: str, table: str) -> None:
    spark = SparkSession.builder.getOrCreate()
    seen = spark.sparkContext.parallelize(range(4), 4).mapPartitions(_where).collect()
    rows = spark.range(100).selectExpr("id", "id % 3 AS k")
    rows.write.format("delta").partitionBy("k").save(table)
    back = spark.read.format("delta").load(table).groupBy("k").sum("id").collect()
    with open(result, "w") as out:
        json.dump({"executors": seen, "sums": {str(r["k"]): r["sum(id)"] for r in back}}, out)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
