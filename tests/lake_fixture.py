"""One small lake, built once per test run by the whole pipeline, for every test that reads a
finished lake (serving, notebooks, governance, the cluster comparison, the analysts' tables).

Building it costs minutes (bronze's cost is per landing file, and the generator needs 18 months),
so it is built at most once per session and only when a test asks for it. Tests must not change
it: a test that writes (erasure, maintenance) takes :func:`copy_lake` of it into its own folder.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cardlake.config import Config, load_config
from cardlake.tables import Tables

# Big enough for every stage to have something to do (fraud, churn, 18 monthly drops), small
# enough to build in a few minutes on two cores.
BUILT_WORLD = {"seed": 5, "n_customers": 300, "n_months": 18}
# For local iteration only: the root (holding lake/, landing/, truth/) of a lake an earlier test
# run built from the same code, e.g. /tmp/pytest-of-$USER/pytest-N/built0. Never set in CI.
REUSE_VAR = "CARDLAKE_TEST_BUILT_LAKE"


@dataclass(frozen=True)
class BuiltLake:
    """A lake the whole pipeline wrote, with its landing zone and truth beside it."""

    cfg: Config
    root: Path  # holds lake/, landing/ and truth/

    @property
    def lake_root(self) -> Path:
        return self.root / "lake"

    @property
    def truth_root(self) -> Path:
        return self.root / "truth"

    def tables(self, spark: SparkSession) -> Tables:
        """The lake's tables, registered for SQL again (other tests drop the catalog)."""
        return Tables.from_config(spark, self.cfg)


def lake_config(root: Path) -> Config:
    """The test environment's settings with every path under ``root``."""
    return load_config(
        "test",
        overrides={
            "paths.lake_root": str(root / "lake"),
            "paths.landing_root": str(root / "landing"),
            "paths.truth_root": str(root / "truth"),
            "synth": dict(BUILT_WORLD),
            "quality.stage_checks": True,  # every suite passes on a whole pipeline's lake
        },
    )


def copy_lake(built: BuiltLake, dest: Path) -> BuiltLake:
    """A private copy of the built lake (lake, landing, truth) for a test that changes it."""
    for part in ("lake", "landing", "truth"):
        shutil.copytree(built.root / part, dest / part)
    return BuiltLake(cfg=lake_config(dest), root=dest)


@pytest.fixture(scope="session")
def built_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> BuiltLake:
    """The whole pipeline (generate, bronze, silver, gold, models) run once on a small world."""
    from cardlake.pipeline import run_pipeline

    reuse = os.environ.get(REUSE_VAR)
    if reuse:  # a developer iterating on one test: a lake an earlier run built, same world
        return BuiltLake(cfg=lake_config(Path(reuse)), root=Path(reuse))
    root = tmp_path_factory.mktemp("built")
    cfg = lake_config(root)
    run_pipeline(spark, cfg)
    return BuiltLake(cfg=cfg, root=root)
