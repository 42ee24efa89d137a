"""One small lake, built once per test run by the whole pipeline, for every test that reads a
finished lake (serving, notebooks, governance, the cluster comparison, the analysts' tables).

Building it costs minutes (bronze's cost is per landing file, and the generator needs 18 months),
so it is built at most once per session and only when a test asks for it. Tests must not change
it: a test that writes (erasure, maintenance) takes :func:`copy_lake` of it into its own folder.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
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
# The same for the default world (`make run`'s): a project root where `make run` built its lake
# (lake/, data/landing, data/truth), copied before use.
DEFAULT_REUSE_VAR = "CARDLAKE_DEFAULT_LAKE"


@dataclass(frozen=True)
class BuiltLake:
    """A lake the whole pipeline wrote, with its landing zone and truth beside it."""

    cfg: Config
    root: Path  # holds lake/, landing/ and truth/
    env: str = "test"  # the settings it was built with, for the jobs a test runs on it
    world: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict(BUILT_WORLD))

    @property
    def lake_root(self) -> Path:
        return self.root / "lake"

    @property
    def truth_root(self) -> Path:
        return self.root / "truth"

    def tables(self, spark: SparkSession) -> Tables:
        """The lake's tables, registered for SQL again (other tests drop the catalog)."""
        return Tables.from_config(spark, self.cfg)


def lake_config(root: Path, *, env: str = "test", world: Mapping[str, int] = BUILT_WORLD) -> Config:
    """``env``'s settings (the test environment's by default) with every path under ``root`` and
    the generator's ``world`` (none: the environment's own, as `make run` has it)."""
    overrides: dict[str, object] = {
        "paths.lake_root": str(root / "lake"),
        "paths.landing_root": str(root / "landing"),
        "paths.truth_root": str(root / "truth"),
        "quality.stage_checks": True,  # every suite passes on a whole pipeline's lake
    }
    if world:
        overrides["synth"] = dict(world)
    return load_config(env, overrides=overrides)


def copy_lake(built: BuiltLake, dest: Path) -> BuiltLake:
    """A private copy of the built lake (lake, landing, truth) for a test that changes it."""
    for part in ("lake", "landing", "truth"):
        shutil.copytree(built.root / part, dest / part)
    return dataclasses.replace(
        built, cfg=lake_config(dest, env=built.env, world=built.world), root=dest
    )


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


@pytest.fixture(scope="session")
def default_world(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> BuiltLake:
    """The world `make run` builds (the ``local`` settings and generator: 2,000 customers, 18
    months) through the whole pipeline, once per session: for the heavy tests that issues ask to
    run on the default data. Minutes: the length of `make run`."""
    root = tmp_path_factory.mktemp("default-world")
    built = BuiltLake(
        cfg=lake_config(root, env="local", world={}), root=root, env="local", world={}
    )
    reuse = os.environ.get(DEFAULT_REUSE_VAR)
    if reuse:  # `make run`'s layout, copied into this one
        source = Path(reuse)
        for part, there in (("lake", "lake"), ("landing", "data/landing"), ("truth", "data/truth")):
            shutil.copytree(source / there, root / part)
        return built
    from cardlake.pipeline import run_pipeline

    run_pipeline(spark, built.cfg)
    return built
