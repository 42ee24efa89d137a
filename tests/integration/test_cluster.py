"""A two-worker Spark standalone cluster runs the pipeline through spark-submit; its gold equals
the local run's (row counts and a checksum per table).

The local run is the built lake (tests/lake_fixture.py). The cluster runs silver and gold from a
copy of that lake's bronze: what a cluster adds is there (the project shipped as a wheel and
imported from it, the Delta and Splink jars on the executors, entity resolution and the gold
joins split over two executors), and their gold proves their silver. With
CARDLAKE_CLUSTER_FROM_LANDING=1 it runs bronze from the landing zone too, the issue's whole chain.

In `make test`, as the issue asks, at the price of minutes of CI. 2026-12-05, 2 cores at load
12-16 (a CI rehearsal and two other test runs beside it), three tests passed each time:
from the landing zone 13.2 min (bronze 267 s, silver 241 s, gold 84 s, the comparison 122 s);
from bronze 12.0 min (silver 369 s, gold 120 s, the comparison 132 s). 2026-12-06, idle, with
a built lake at hand: 5.1 min (the job 265 s: silver 188 s, gold 53 s; the comparison 34 s).

The job runs beside the rest of the suite: the test that starts it (``starts_job``) runs first
and the tests that wait for it (``waits_for_job``) last (tests/conftest.py), so the cluster's
minutes overlap the in-process tests' instead of adding to them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession

from cardlake.config import load_config
from cardlake.spark import delta_spark_loaded
from cardlake.tables import Tables
from tests.infra.services import ROOT, load_infra, table_fingerprint
from tests.lake_fixture import BUILT_WORLD, BuiltLake

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SUBMIT_TIMEOUT_S = 2400  # beside the rest of the suite; 12-13 min alone at load 12-16
WORKER_MEMORY = "1g"  # per worker; each runs one 512m executor
# Bronze on the cluster too (5 minutes more) where asked; else the built lake's bronze is the
# cluster's input. Models and analytics are not run, nor compared.
FROM_LANDING = os.environ.get("CARDLAKE_CLUSTER_FROM_LANDING") == "1"
STAGES = "bronze,silver,gold" if FROM_LANDING else "silver,gold"
# The `cluster` profile leaves Spark's defaults, made for big data (Delta replays its log in 50
# tasks per snapshot, for one): on test-scale data the run takes the test profile's small-data
# settings (cardlake.spark), none of which changes a result. No driver UI: no port to clash.
SMALL_DATA = {
    "spark.sql.shuffle.partitions": "4",
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "4096",
    "spark.ui.enabled": "false",
}


# The pipeline's session names its application (spark.app_name in conf/base.yaml) over the
# name submit.py gives; the probe job below keeps submit's (cardlake-cluster_probe).
PIPELINE_APP = load_config("test").spark.app_name


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A master and two one-core workers on loopback, started by infra's own start code."""
    cluster = load_infra("standalone/cluster.py")
    state_dir = tmp_path_factory.mktemp("cluster")
    state = cluster.start(state_dir, workers=2, worker_cores=1, worker_memory=WORKER_MEMORY)
    try:
        yield state
    finally:
        cluster.stop(state_dir)


def _cluster_conf_dir(dest: Path, built: BuiltLake, lake: Path) -> Path:
    # The test environment's settings (so bronze, silver and gold behave as in the local run),
    # with the cluster profile and the JVM Delta connector, writing a lake of its own.
    conf = dest / "conf"
    shutil.copytree(ROOT / "conf", conf)
    overlay = yaml.safe_load((conf / "test.yaml").read_text()) or {}
    overlay["spark"] = {**overlay.get("spark", {}), "profile": "cluster", "conf": SMALL_DATA}
    overlay["tables"] = {**overlay.get("tables", {}), "engine": "delta-spark"}
    overlay["paths"] = {
        "lake_root": str(lake),
        "landing_root": str(built.root / "landing"),
        "truth_root": str(built.truth_root),
    }
    overlay["synth"] = dict(BUILT_WORLD)
    (conf / "test.yaml").write_text(yaml.safe_dump(overlay))
    return conf


@dataclass
class ClusterRun:
    """The pipeline's spark-submit, running in a process group of its own beside the suite."""

    lake: Path
    log: Path
    process: subprocess.Popen[bytes]
    deadline: float  # time.monotonic() after which it is killed

    def result(self) -> Path:
        """Waits for the job; its lake when it exited 0."""
        try:
            returncode = self.process.wait(timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"spark-submit still running after {SUBMIT_TIMEOUT_S} s; log {self.log}")
        tail = self.log.read_text()[-3000:]
        assert returncode == 0, f"spark-submit exited {returncode}; log {self.log}:\n{tail}"
        return self.lake

    def stop(self) -> None:
        # The driver's Python goes too, not only the spark-submit JVM that started it.
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once (with its ``.zip`` copy for ``--py-files``)."""
    wheel: Path = load_infra("standalone/submit.py").build_wheel(tmp_path_factory.mktemp("dist"))
    return wheel


@pytest.fixture(scope="session")
def cluster_submission(
    standalone_cluster: Any,
    built_lake: BuiltLake,
    spark: SparkSession,
    project_wheel: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClusterRun]:
    """Starts the pipeline on the cluster and returns at once: the job runs beside the rest of
    the suite (tests/conftest.py runs the test that starts it first, the ones that wait for it
    last), so its minutes overlap the in-process tests' instead of adding to them."""
    # The submit ships the Delta connector the local session resolved into the Ivy folder (the
    # executors' class path lists the jars found there); without them it cannot run.
    if not delta_spark_loaded(spark):
        from tests.conftest import delta_spark_missing

        pytest.skip(delta_spark_missing())
    submit = load_infra("standalone/submit.py")
    work = tmp_path_factory.mktemp("cluster-run")
    lake = work / "lake"
    conf = _cluster_conf_dir(work, built_lake, lake)
    if not FROM_LANDING:  # a copy: the built lake is shared and read-only
        shutil.copytree(built_lake.lake_root / "bronze", lake / "bronze")
    command = submit.submit_command(
        "jobs/run_pipeline.py",
        ["--env", "test", "--only", STAGES],
        master=standalone_cluster.master_url,
        wheel=project_wheel,
        executor_memory="512m",
        executor_cores=1,
        max_cores=2,
        driver_memory="1g",
    )
    env = {
        **os.environ,
        "CARDLAKE_CONF_DIR": str(conf),
        "CARDLAKE_HOME": str(ROOT),
        "PYSPARK_PYTHON": sys.executable,
    }
    log = work / "submit.log"
    with log.open("w") as out:
        # Its own working folder (Spark's warehouse folder is relative to it: the suite's session
        # drops its SQL databases between tests) and its own process group (see ClusterRun.stop).
        process = subprocess.Popen(
            command,
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    run = ClusterRun(lake, log, process, deadline=time.monotonic() + SUBMIT_TIMEOUT_S)
    watchdog = threading.Timer(SUBMIT_TIMEOUT_S, run.stop)  # a hung job stops at its deadline
    watchdog.daemon = True
    watchdog.start()
    try:
        yield run
    finally:
        watchdog.cancel()
        run.stop()


@pytest.fixture(scope="session")
def cluster_lake(cluster_submission: ClusterRun) -> Path:
    return cluster_submission.result()


@pytest.mark.starts_job
def test_the_cluster_has_two_workers(
    standalone_cluster: Any, cluster_submission: ClusterRun
) -> None:
    cluster = load_infra("standalone/cluster.py")
    status = cluster.master_status(standalone_cluster.master_ui_port)
    alive = [w for w in status["workers"] if w["state"] == "ALIVE"]
    assert len(alive) == 2
    assert {w["host"] for w in alive} == {"127.0.0.1"}


@pytest.mark.waits_for_job
def test_submitted_job_ran_on_the_workers_with_the_shipped_wheel(
    standalone_cluster: Any, cluster_lake: Path
) -> None:
    cluster = load_infra("standalone/cluster.py")
    status = cluster.master_status(standalone_cluster.master_ui_port)
    finished = [a for a in status.get("completedapps", []) if a["name"] == PIPELINE_APP]
    assert len(finished) == 1, status.get("completedapps")
    # Both workers ran an executor of the application (its work folder holds its stderr).
    app_id = finished[0]["id"]
    state_dir = Path(standalone_cluster.logs[0]).parent
    ran = [p for p in state_dir.glob(f"worker-*/{app_id}/*") if p.is_dir()]
    assert len({p.parent.parent.name for p in ran}) == 2, ran


@pytest.mark.waits_for_job
def test_gold_on_the_cluster_equals_the_local_run(
    spark: SparkSession, built_lake: BuiltLake, cluster_lake: Path
) -> None:
    cluster_tables = sorted(p.name for p in (cluster_lake / "gold").iterdir() if p.is_dir())
    assert {"dim_customer", "fact_transactions", "customer_monthly_features"} <= set(cluster_tables)
    local = built_lake.tables(spark)
    remote = Tables.from_config(
        spark,
        load_config(
            "test",
            overrides={
                "paths.lake_root": str(cluster_lake),
                "paths.landing_root": str(built_lake.root / "landing"),
                "paths.truth_root": str(built_lake.truth_root),
            },
        ),
    )
    differing = {}
    for name in cluster_tables:
        ours = table_fingerprint(remote.read(f"gold.{name}"))
        theirs = table_fingerprint(local.read(f"gold.{name}"))
        assert ours[0] > 0, f"gold.{name} is empty on the cluster"
        if ours != theirs:
            differing[name] = {"cluster": ours, "local": theirs}
    assert differing == {}


@pytest.fixture(scope="session")
def packed_env(project_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The project alone (no dependencies): enough for the probe, and seconds instead of minutes.
    submit = load_infra("standalone/submit.py")
    packed: Path = submit.pack_environment(
        project_wheel, tmp_path_factory.mktemp("packed") / "env.tar.gz", dependencies=False
    )
    return packed


def test_a_packed_environment_runs_its_own_python_wherever_it_is_unpacked(
    packed_env: Path, tmp_path: Path
) -> None:
    # Unpacked as Spark unpacks --archives (tar), under a name chosen by the submit.
    where = tmp_path / "elsewhere" / "environment"
    where.mkdir(parents=True)
    subprocess.run(["tar", "-xzf", str(packed_env), "-C", str(where)], check=True)
    probe = "import sys, cardlake; print(sys.prefix); print(cardlake.__file__)"
    out = subprocess.run(
        [str(where / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    ).stdout.split()
    assert out[0] == str(where)
    assert Path(out[1]).is_relative_to(where / "lib"), out[1]


@pytest.mark.waits_for_job  # the cluster's two cores are the pipeline's until it ends
def test_executors_run_the_packed_environment_and_import_the_shipped_wheel(
    standalone_cluster: Any,
    cluster_lake: Path,
    project_wheel: Path,
    packed_env: Path,
    tmp_path: Path,
) -> None:
    submit = load_infra("standalone/submit.py")
    command = submit.submit_command(
        str(Path(__file__).with_name("cluster_probe.py")),
        [str(tmp_path / "probe.json"), str(tmp_path / "table")],
        master=standalone_cluster.master_url,
        wheel=project_wheel,
        python_env="packed",
        packed_env=packed_env,
        max_cores=2,
        conf=SMALL_DATA,
    )
    log = tmp_path / "submit.log"
    with log.open("w") as out:
        done = subprocess.run(
            command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, timeout=600, check=False
        )
    assert done.returncode == 0, log.read_text()[-3000:]
    probe = json.loads((tmp_path / "probe.json").read_text())
    state_dir = Path(standalone_cluster.logs[0]).parent
    for prefix, cardlake_file in probe["executors"]:
        # <state>/worker-N/<application>/<executor>/environment: the archive, not this .venv
        assert Path(prefix).name == "environment", prefix
        assert Path(prefix).is_relative_to(state_dir), prefix
        # The wheel shipped with --py-files, ahead of the copy inside the environment
        assert cardlake_file == f"./{submit.importable(project_wheel).name}/cardlake/__init__.py"
    # ids 0..99 by id % 3: the sums of 0, 3, .., 99; 1, 4, .., 97; 2, 5, .., 98
    assert probe["sums"] == {"0": 1683, "1": 1617, "2": 1650}
