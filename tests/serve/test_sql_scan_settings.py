"""The SQL server's own session settings for scanning Delta tables (jobs/sql_server.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _job() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sql_server_job", ROOT / "jobs" / "sql_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("master", ["local[*]", "local[2]", "local"])
def test_a_local_server_keeps_delta_state_in_one_partition(master: str) -> None:
    # One task per query for Delta's file listing instead of the profile's 8.
    assert _job().scan_settings(master) == {"spark.databricks.delta.snapshotPartitions": "1"}


@pytest.mark.parametrize("master", ["", "spark://head:7077", "yarn", "k8s://https://api:6443"])
def test_a_cluster_server_keeps_the_profile_settings(master: str) -> None:
    assert _job().scan_settings(master) == {}
