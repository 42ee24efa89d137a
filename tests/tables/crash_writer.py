"""Child process for the crash tests: writes through the table layer, then dies part-way.

``die-before-commit``: the Parquet files are written and moved into the table, then the process
exits before the commit. ``slow-write``: one Spark task writes its file while the others stall;
the parent kills the whole process group while the write is under way.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from cardlake.config import load_config
from cardlake.spark import build_session
from cardlake.tables.delta_rs import DeltaRsEngine


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    scratch = tempfile.mkdtemp()
    cfg = load_config("test", overrides={"paths.lake_root": scratch})
    spark = build_session(cfg)
    engine = DeltaRsEngine(spark=spark)
    df = spark.range(0, 1000, numPartitions=4).selectExpr("id", "'2025-06' as month")
    if mode == "die-before-commit":

        def die(*_args: object, **_kwargs: object) -> None:
            os._exit(9)

        engine._commit = die  # type: ignore[method-assign]
        engine.append(path, df)
    elif mode == "slow-write":

        def stall(batches):  # type: ignore[no-untyped-def]
            from pyspark import TaskContext

            if TaskContext.get().partitionId() > 0:
                time.sleep(600)
            yield from batches

        engine.append(path, df.mapInArrow(stall, df.schema))
    sys.exit(0)


if __name__ == "__main__":
    main()
