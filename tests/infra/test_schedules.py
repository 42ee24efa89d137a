"""What a platform team deploys from infra/ names only things that exist in the project.

The Databricks bundle, the Airflow DAG, the cron line and the systemd units are loaded as files
(no Databricks CLI or Airflow install here: the bundle as YAML, the DAG through its syntax tree)
and every stage, entry point, job file, option, make target and version they name is checked
against the project itself.
"""

from __future__ import annotations

import ast
import configparser
import datetime as dt
import functools
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.services import INFRA, ROOT, load_infra

BUNDLE = INFRA / "databricks" / "databricks.yml"
DAG = INFRA / "airflow" / "cardlake_monthly.py"
CRON = INFRA / "cron" / "cardlake.cron"
MONTHLY = INFRA / "cron" / "monthly.sh"
SERVICE = INFRA / "systemd" / "cardlake-monthly.service"
TIMER = INFRA / "systemd" / "cardlake-monthly.timer"
DEPLOYED_AT = "/opt/cardlake"  # where the cron and systemd examples expect the checkout
# Databricks Runtime major version -> the Apache Spark line it is built on (release notes).
DBR_SPARK_LINE = {"17": "4.0", "18": "4.1"}
SAMPLE_MONTH = "2025-06"


def _pipeline_stages() -> list[str]:
    from cardlake.pipeline import STAGES

    return [s.name for s in STAGES]


@functools.cache
def _cli_parser() -> Any:
    from cardlake.cli import build_parser

    return build_parser()


def _cli_parses(args: list[str]) -> Any:
    """Parses ``args`` with the ``cardlake`` console script's own parser (usage errors raise)."""
    return _cli_parser().parse_args(args)


def _fill_templates(args: list[str]) -> list[str]:
    return [SAMPLE_MONTH if "{{" in a and "month" in a else a for a in args]


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    data = yaml.safe_load(BUNDLE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def job(bundle: dict[str, Any]) -> dict[str, Any]:
    jobs = bundle["resources"]["jobs"]
    assert list(jobs) == ["cardlake_monthly"]
    return dict(jobs["cardlake_monthly"])


# -- the Databricks Asset Bundle ------------------------------------------------------------


def test_bundle_tasks_are_the_pipeline_stages_in_order(job: dict[str, Any]) -> None:
    tasks = {t["task_key"]: t for t in job["tasks"]}
    stages = [k for k in tasks if k != "resolve_month"]
    pipeline = _pipeline_stages()
    assert stages == [s for s in pipeline if s in stages]
    assert set(stages) == set(pipeline) - {"generate"}  # synthetic data is no production stage
    previous = "resolve_month"
    for stage in stages:
        assert tasks[stage]["depends_on"] == [{"task_key": previous}]
        previous = stage


def test_bundle_tasks_call_the_wheels_console_script_with_options_it_takes(
    job: dict[str, Any],
) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for task in job["tasks"]:
        if task["task_key"] == "resolve_month":
            continue
        wheel_task = task["python_wheel_task"]
        assert wheel_task["package_name"] == "cardlake"
        assert wheel_task["entry_point"] in scripts
        assert scripts[wheel_task["entry_point"]] == "cardlake.cli:main"
        args = _cli_parses(_fill_templates(wheel_task["parameters"]))
        assert args.command == task["task_key"]
        assert args.env == "cluster"
        assert args.month == SAMPLE_MONTH
        assert task["libraries"] == [{"whl": "../../dist/*.whl"}]


def test_bundle_runtime_matches_the_projects_spark_and_scala(job: dict[str, Any]) -> None:
    import pyspark

    from cardlake.spark import SCALA_BINARY

    (cluster,) = job["job_clusters"]
    version = cluster["new_cluster"]["spark_version"]
    match = re.fullmatch(r"(\d+)\.(\d+)\.x-scala(\d+\.\d+)", version)
    assert match, version
    assert DBR_SPARK_LINE[match.group(1)] == ".".join(pyspark.__version__.split(".")[:2])
    assert match.group(3) == SCALA_BINARY
    env = cluster["new_cluster"]["spark_env_vars"]
    assert env["CARDLAKE_ENV"] == "cluster"
    assert (ROOT / "conf" / "cluster.yaml").is_file()
    cluster_conf = (ROOT / "conf" / "cluster.yaml").read_text()
    for needed in re.findall(r"\$\{([A-Z_]+)\}", cluster_conf):  # every variable it reads
        assert needed in env, f"conf/cluster.yaml reads ${{{needed}}}; the bundle does not set it"


def test_bundle_schedule_targets_and_paths(bundle: dict[str, Any], job: dict[str, Any]) -> None:
    schedule = job["schedule"]
    fields = schedule["quartz_cron_expression"].split()
    assert len(fields) == 6 and fields[3] == "2" and fields[4] == "*"  # monthly, on the 2nd
    assert schedule["timezone_id"] == "UTC"
    assert job["max_concurrent_runs"] == 1
    assert set(bundle["targets"]) == {"dev", "prod"}
    assert bundle["targets"]["dev"]["mode"] == "development"
    assert bundle["targets"]["prod"]["mode"] == "production"
    here = BUNDLE.parent
    assert (here / bundle["artifacts"]["cardlake_wheel"]["path"] / "pyproject.toml").is_file()
    for path in bundle["sync"]["paths"]:
        assert (here / path).is_dir(), path
    resolve = job["tasks"][0]["spark_python_task"]["python_file"]
    assert (here / resolve).is_file()
    defined = set(bundle["variables"])
    used = set(re.findall(r"\$\{var\.([a-z_]+)\}", BUNDLE.read_text()))
    assert used <= defined, used - defined
    for target in bundle["targets"].values():  # variables without a default get one per target
        given = set(target.get("variables", {}))
        assert {v for v, spec in bundle["variables"].items() if "default" not in spec} <= given


def test_resolve_month_takes_the_month_before_the_trigger_unless_given() -> None:
    resolve = load_infra("databricks/resolve_month.py")
    assert resolve.resolve("", "2026-01-02") == "2025-12"
    assert resolve.resolve("", "2026-03-02T06:00:00") == "2026-02"
    assert resolve.resolve("2025-06", "2026-03-02") == "2025-06"
    with pytest.raises(ValueError, match="YYYY-MM"):
        resolve.resolve("2025-13", "2026-03-02")


# -- the Airflow DAG -------------------------------------------------------------------------


def _dag_constants() -> dict[str, Any]:
    tree = ast.parse(DAG.read_text())
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    out[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return out


def _dag_keywords() -> dict[str, ast.expr]:
    tree = ast.parse(DAG.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DAG":
            return {k.arg: k.value for k in node.keywords if k.arg}
    raise AssertionError("no DAG(...) in the DAG file")


def test_dag_runs_the_stages_in_pipeline_order_through_existing_jobs() -> None:
    constants = _dag_constants()
    stages = [stage for stage, _ in constants["STAGES"]]
    pipeline = _pipeline_stages()
    assert stages == [s for s in pipeline if s != "generate"]
    assert "infra/standalone/submit.py" in constants["SUBMIT"]
    assert (ROOT / "infra" / "standalone" / "submit.py").is_file()
    for stage, command in constants["STAGES"]:
        job_file, *extra = command.split()
        assert (ROOT / job_file).is_file(), job_file
        # the job is a shell over `cardlake <command>`: the DAG's options must parse there
        command_name = "run" if job_file.endswith("run_pipeline.py") else stage
        args = _cli_parses([command_name, *extra, "--env", "cluster", "--month", SAMPLE_MONTH])
        assert args.env == "cluster"
        if extra:
            assert args.only == stage


def test_dag_schedule_is_monthly_and_one_run_at_a_time() -> None:
    keywords = _dag_keywords()
    schedule = ast.literal_eval(keywords["schedule"])
    fields = schedule.split()
    assert len(fields) == 5 and fields[2:] == ["2", "*", "*"]
    assert ast.literal_eval(keywords["max_active_runs"]) == 1
    assert ast.literal_eval(keywords["catchup"]) is False
    # The month template: the month before the logical date, computed as Jinja would.
    month = _dag_constants()["MONTH"]
    assert "logical_date.replace(day=1)" in month and "timedelta(days=1)" in month
    compile(DAG.read_text(), str(DAG), "exec")


# -- cron and systemd ------------------------------------------------------------------------


def test_cron_line_runs_the_monthly_script_on_the_2nd() -> None:
    lines = [ln for ln in CRON.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    jobs = [ln for ln in lines if not re.match(r"^[A-Z_]+=", ln)]
    assert len(jobs) == 1
    fields = jobs[0].split()
    assert fields[:5] == ["0", "6", "2", "*", "*"]  # then the user, then the command
    command = fields[6]
    assert command == f"{DEPLOYED_AT}/infra/cron/monthly.sh"
    assert MONTHLY.is_file() and os.access(MONTHLY, os.X_OK)


def _run_monthly(tmp_path: Path, *args: str) -> list[str]:
    # `make` replaced by a recorder on PATH: the script's own month arithmetic is under test.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "make-args"
    fake = bin_dir / "make"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(["bash", str(MONTHLY), *args], env=env, check=True, timeout=30)
    return record.read_text().split()


def test_monthly_script_calls_the_make_target_for_the_month_just_ended(tmp_path: Path) -> None:
    assert _run_monthly(tmp_path, "2025-06")[:2] == ["monthly", "MONTH=2025-06"]
    today = dt.datetime.now(dt.UTC).date()
    expected = (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    assert _run_monthly(tmp_path)[:2] == ["monthly", f"MONTH={expected}"]
    # ... and the target exists in the Makefile.
    make = shutil.which("make")
    assert make is not None
    dry = subprocess.run(
        [make, "-n", "monthly", f"MONTH={SAMPLE_MONTH}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert dry.returncode == 0, dry.stderr


def test_systemd_units_are_valid_and_restart_only_when_the_lake_is_locked(tmp_path: Path) -> None:
    from cardlake.cli import EXIT_LOCKED

    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.optionxform = str  # type: ignore[assignment,method-assign]
    service.read_string(SERVICE.read_text())
    assert service["Service"]["ExecStart"] == f"{DEPLOYED_AT}/infra/cron/monthly.sh"
    assert service["Service"]["RestartForceExitStatus"] == str(EXIT_LOCKED)
    assert service["Service"]["Restart"] == "no"
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.optionxform = str  # type: ignore[assignment,method-assign]
    timer.read_string(TIMER.read_text())
    calendar = timer["Timer"]["OnCalendar"]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed: unit files checked as INI only")
    out = subprocess.run(
        [analyze, "calendar", calendar], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "-02 06:00:00 UTC" in out.stdout
    for unit in (SERVICE, TIMER):  # with the checkout where the example expects it
        (tmp_path / unit.name).write_text(unit.read_text().replace(DEPLOYED_AT, str(ROOT)))
    verify = subprocess.run(
        [analyze, "verify", str(tmp_path / TIMER.name), str(tmp_path / SERVICE.name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
