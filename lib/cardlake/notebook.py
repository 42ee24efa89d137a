"""What a notebook needs in its first cell: the settings, one session and the lake's tables.

    from cardlake.notebook import open_lake
    lake = open_lake()            # $CARDLAKE_ENV (default local); the lake `make run` built
    lake.sql("select * from gold.kpi_monthly").toPandas()

``CARDLAKE_LAKE_ROOT``, ``CARDLAKE_LANDING_ROOT`` and ``CARDLAKE_TRUTH_ROOT`` point a notebook at
another lake (the tests run the notebooks against their own).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardlake.config import Config, load_config

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from pyspark.sql import DataFrame, SparkSession

    from cardlake.tables import Tables

PATH_VARIABLES = {
    "paths.lake_root": "CARDLAKE_LAKE_ROOT",
    "paths.landing_root": "CARDLAKE_LANDING_ROOT",
    "paths.truth_root": "CARDLAKE_TRUTH_ROOT",
}


@dataclass(frozen=True)
class Lake:
    """A notebook's handle on the lake."""

    cfg: Config
    spark: SparkSession
    tables: Tables

    def sql(self, query: str) -> DataFrame:
        return self.spark.sql(query)

    def pandas(self, query: str) -> pd.DataFrame:
        """A query's (small) result as pandas, for charts."""
        return self.spark.sql(query).toPandas()


def open_lake(env: str | None = None) -> Lake:
    """Loads the settings, builds the session and registers every table for SQL."""
    from cardlake.spark import build_session
    from cardlake.tables import Tables

    overrides = {key: os.environ[var] for key, var in PATH_VARIABLES.items() if var in os.environ}
    cfg = load_config(env, overrides=overrides)
    spark = build_session(cfg)
    return Lake(cfg=cfg, spark=spark, tables=Tables.from_config(spark, cfg))


def inventory(lake: Lake) -> pd.DataFrame:
    """One row per Delta table of the lake (every layer, quarantine and ops too).

    Read from each table's log and Parquet footers with ``deltalake`` (no Spark scan), so it
    costs milliseconds per table: Delta version, live data files, their bytes and rows.
    """
    import pandas as pd
    import pyarrow as pa
    from deltalake import DeltaTable

    root = Path(lake.cfg.paths.lake_root)
    rows: list[dict[str, Any]] = []
    for log_dir in sorted(root.glob("*/*/_delta_log")):
        folder = log_dir.parent
        table = DeltaTable(str(folder))
        files = pa.table(table.get_add_actions(flatten=True)).to_pandas()
        rows.append({"layer": folder.parent.name, "table": folder.name,
                     "version": table.version(), "files": len(files),
                     "mib": round(float(files["size_bytes"].sum()) / 2**20, 3),
                     "rows": table.to_pyarrow_dataset().count_rows()})
    return pd.DataFrame(rows, columns=["layer", "table", "version", "files", "mib", "rows"])


def use_mlflow(lake: Lake) -> MlflowClient:
    """Points MLflow at the lake's tracking store and registry (as the model jobs do)."""
    import mlflow
    from mlflow import MlflowClient

    from cardlake.ml.settings import load_ml_settings
    from cardlake.ml.tracking import tracking_uri

    uri = tracking_uri(lake.cfg.paths.lake_root, load_ml_settings(lake.cfg.env).tracking)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient()
