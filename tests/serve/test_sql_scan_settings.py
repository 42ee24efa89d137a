"""The SQL server's own session settings for scanning Delta tables (jobs/sql_server.py); the
integration test of the server (tests/integration/test_sql_server.py) reads them back from the
running server."""

from __future__ import annotations

import pytest

from tests.infra.services import load_job


@pytest.mark.parametrize("master", ["local[*]", "local[2]", "local"])
def test_a_local_server_keeps_delta_state_in_one_partition(master: str) -> None:
    # One task per query for Delta's file listing instead of the profile's 8.
    settings = load_job("sql_server.py").scan_settings(master)
    assert settings == {"spark.databricks.delta.snapshotPartitions": "1"}


@pytest.mark.parametrize("master", ["", "spark://head:7077", "yarn", "k8s://https://api:6443"])
def test_a_cluster_server_keeps_the_profile_settings(master: str) -> None:
    assert load_job("sql_server.py").scan_settings(master) == {}
