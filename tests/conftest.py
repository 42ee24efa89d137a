"""One SparkSession per test run (the test profile), and a clean SQL catalog per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from cardlake.config import Config, load_config
from cardlake.spark import build_session, connector_status, delta_spark_loaded
from cardlake.tables import DeltaEngine, Tables
from cardlake.tables.catalog import SQL_LAYERS

# `built_lake`: the whole pipeline run once on a small world, for tests that read a finished lake.
pytest_plugins = ["tests.lake_fixture"]

ENGINES = ("delta-rs", "delta-spark")

# `make test` runs the suite on two pytest-xdist workers (`--dist loadgroup`), each with its own
# SparkSession. A test goes to a worker with the rest of its group: every test that reads the
# built lake shares one group (so one worker builds the lake, once, and it is the first group
# handed out, the longest); every other test goes with its module (module fixtures, brokers and
# servers start once), the dashboard's tests with their folder (they share its session fixtures).
BUILT_LAKE_GROUP = "built_lake"
# Fixtures that ask for the built lake by name at run time (unless a variable names another
# lake), so it is not in the test's fixture closure.
BUILT_LAKE_FIXTURES = {"built_lake", "pipeline_lake"}
FOLDER_GROUPS = ("tests/serve/",)


def xdist_group(item: pytest.Item) -> str:
    """The group of workers' scheduling a test belongs to (see above)."""
    if BUILT_LAKE_FIXTURES & set(item.fixturenames):
        return BUILT_LAKE_GROUP
    path = item.nodeid.split("::", 1)[0]
    return next((folder for folder in FOLDER_GROUPS if path.startswith(folder)), path)


def pytest_itemcollected(item: pytest.Item) -> None:
    # As each test is collected: xdist reads the marks into the test ids in its own
    # pytest_collection_modifyitems, which runs before any of this file's.
    if item.config.pluginmanager.hasplugin("xdist"):
        item.add_marker(pytest.mark.xdist_group(xdist_group(item)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A job in processes of its own (the cluster's spark-submit) runs beside the other tests:
    # the test that starts it first, the tests that wait for its result last.
    def place(item: pytest.Item) -> int:
        if item.get_closest_marker("starts_job"):
            return 0
        return 2 if item.get_closest_marker("waits_for_job") else 1

    items.sort(key=place)  # stable: the order within each part is pytest's


def delta_spark_missing() -> str:
    """Why the delta-spark engine is not loaded, as the session build recorded it."""
    status = connector_status()
    why = status.reason if status else "the session was built outside cardlake.spark"
    return f"delta-spark engine not loaded in this session: {why}"


@pytest.fixture(scope="session")
def test_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cardlake")


@pytest.fixture(scope="session")
def cfg(test_root: Path) -> Config:
    return load_config(
        "test",
        overrides={
            "paths.lake_root": str(test_root / "lake"),
            "paths.landing_root": str(test_root / "landing"),
            "paths.truth_root": str(test_root / "truth"),
        },
    )


@pytest.fixture(scope="session")
def spark(cfg: Config) -> Iterator[SparkSession]:
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    session = build_session(cfg)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def stream_mini_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The fraud stream's mini lake (tests/stream/mini_lake.py), built once for the stream's
    modules; each test copies it before its stream writes anything."""
    from cardlake.bronze.contracts import load_bronze_config
    from tests.stream.mini_lake import build_mini_lake

    key = load_bronze_config("test").token_key("test")
    return build_mini_lake(spark, tmp_path_factory.mktemp("stream_base"), token_key=key)


@pytest.fixture
def clean_catalog(spark: SparkSession) -> Iterator[None]:
    """Drops the SQL databases after a test so table names never leak between tests."""
    yield
    for layer in SQL_LAYERS:
        spark.sql(f"DROP DATABASE IF EXISTS `{layer}` CASCADE")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, spark: SparkSession) -> DeltaEngine:
    if request.param == "delta-spark":
        if not delta_spark_loaded(spark):
            pytest.skip(delta_spark_missing())
        from cardlake.tables.delta_spark import DeltaSparkEngine

        return DeltaSparkEngine(spark=spark)
    from cardlake.tables.delta_rs import DeltaRsEngine

    return DeltaRsEngine(spark=spark)


# CARDLAKE_TEST_LAKE_URI (say s3a://bucket/contract) puts each `tables` test's lake there, in a
# folder of its own: tests/integration/test_s3.py runs the contract so against a local S3 server.
LAKE_URI_VAR = "CARDLAKE_TEST_LAKE_URI"


@pytest.fixture
def tables(spark: SparkSession, engine: DeltaEngine, tmp_path: Path, clean_catalog: None) -> Tables:
    uri = os.environ.get(LAKE_URI_VAR)
    if not uri:
        return Tables(spark=spark, lake_root=str(tmp_path / "lake"), engine=engine)
    if engine.name == "delta-rs":
        pytest.skip("the delta-rs engine commits tables in local folders, not on object stores")
    return Tables(spark=spark, lake_root=f"{uri.rstrip('/')}/{tmp_path.name}", engine=engine)


@pytest.fixture
def rs_tables(spark: SparkSession, tmp_path: Path, clean_catalog: None) -> Tables:
    """The embedded engine alone, for tests of its own behaviour (crash, interop, refusals)."""
    from cardlake.tables.delta_rs import DeltaRsEngine

    return Tables(spark=spark, lake_root=str(tmp_path / "lake"), engine=DeltaRsEngine(spark=spark))
