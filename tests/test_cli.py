"""The ``cardlake`` command and the ``jobs/*.py`` shells: exit codes and the run lock.

Nearly every test here runs the installed console script (or a job file) as a subprocess, the
way a scheduler does, and reads its exit code and its console; one calls ``run_job`` in-process,
as the erasure test does. The ones that need no Spark session are fast; the missing connector
starts a JVM that stops at package resolution (marked slow); the two that ingest a landing file
start a session each (marked slow and integration).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cardlake.errors import JobFailed, LakeLocked
from cardlake.lock import LOCK_NAME, LakeLock, read_holder
from tests.test_spark import NO_MAVEN  # Ivy with no reachable repository

ROOT = Path(__file__).resolve().parents[1]
CARDLAKE = Path(sys.executable).with_name("cardlake")
FX_HEADER = "date,currency,units_per_usd"


def cardlake(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CARDLAKE), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "CARDLAKE_ENV": "test", **(env or {})},
        check=False,
    )


def job(
    script: str, *argv: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, f"jobs/{script}", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "CARDLAKE_ENV": "test", **(env or {})},
        check=False,
    )


def paths(tmp_path: Path) -> list[str]:
    # Every lake-writing option points into tmp_path, so no test can touch ./lake.
    return [
        "--lake-root",
        str(tmp_path / "lake"),
        "--landing-root",
        str(tmp_path / "landing"),
        "--truth-root",
        str(tmp_path / "truth"),
    ]


def test_help_lists_the_commands_and_exits_0() -> None:
    done = cardlake("--help")
    assert done.returncode == 0
    for command in ("run", "generate", "bronze", "silver", "gold", "ml"):
        assert f"    {command} " in done.stdout
    assert "5 the lake is locked" in done.stdout
    gold = cardlake("gold", "--help")
    assert gold.returncode == 0 and "--month" in gold.stdout and "--wait" in gold.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--only", "bronze,silvr"], "no stage named 'silvr'"),
        (["gold", "--month", "2025-13"], "expected a month as YYYY-MM"),
        (
            ["run", "--only", "generate", "--env", "no-such-env"],
            "no overlay for environment 'no-such-env'",
        ),
        (["bogus"], "invalid choice: 'bogus'"),
        (
            ["gold", "--set", "gold.features.lookback_months=twelve"],
            "gold.features.lookback_months: must be int",
        ),
        ([], "usage: cardlake"),
    ],
)
def test_usage_and_configuration_errors_exit_2(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    done = cardlake(
        *argv,
        *(paths(tmp_path) if argv and argv[0] != "bogus" else []),
        env={"CARDLAKE_ENV": "test"},
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "lake").exists()  # nothing ran


def test_no_java_exits_3_with_one_sentence(tmp_path: Path) -> None:
    done = cardlake("gold", *paths(tmp_path), env={"JAVA_HOME": str(tmp_path / "no-jdk")})
    assert done.returncode == 3, done.stderr
    assert "Spark needs Java 17+" in done.stderr and "no-jdk" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow  # one JVM start, which stops at Spark's package resolution
def test_a_connector_that_cannot_load_exits_3_with_one_line(tmp_path: Path) -> None:
    ivy_settings = tmp_path / "ivysettings.xml"
    ivy_settings.write_text(NO_MAVEN.format(cache=tmp_path / "ivy-cache"))
    done = cardlake(
        "gold",
        *paths(tmp_path),
        "--set",
        "tables.engine=delta-spark",
        "--set",
        f"spark.conf={{spark.jars.ivySettings: {ivy_settings}}}",
        env={"CARDLAKE_IVY_DIR": str(tmp_path / "ivy")},
        timeout=300,
    )
    assert done.returncode == 3, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        "cardlake: tables.engine is delta-spark, but Spark could not "
        "resolve io.delta:delta-spark_4.1_2.13:4.4.0"
    ), line
    assert "set tables.engine: auto" in line


def test_a_crash_exits_4_not_1(tmp_path: Path) -> None:
    # The landing root is a file: writing the landing zone fails with an unexpected OS error.
    (tmp_path / "landing").write_text("not a folder")
    done = cardlake("generate", *paths(tmp_path), "--set", "synth.n_customers=20")
    assert done.returncode == 4, done.stderr
    assert "crashed:" in done.stderr
    assert "Traceback" not in done.stderr  # one line on the console


def test_generate_exits_0_and_writes_landing(tmp_path: Path) -> None:
    done = cardlake(
        "generate", *paths(tmp_path), "--month", "2024-02", "--set", "synth.n_customers=20"
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "landing" / "crm_customers" / "2024-02").is_dir()
    assert "ok generate" in " ".join(done.stdout.split())
    assert not (tmp_path / "lake").exists()  # generate writes no lake, so takes no lock


def test_a_second_run_exits_5_naming_the_holder(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with LakeLock(str(lake), command="run --month 2025-06"):
        done = cardlake("gold", *paths(tmp_path))
        waited = cardlake("gold", *paths(tmp_path), "--wait", "1")
    assert done.returncode == 5, done.stderr
    assert f"pid {os.getpid()} on {socket.gethostname()}" in done.stderr
    assert "run --month 2025-06" in done.stderr and "--wait" in done.stderr
    assert waited.returncode == 5, waited.stderr
    assert not (lake / "_ops" / LOCK_NAME).exists()  # released by the holder


def test_job_shells_are_the_same_harness(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "jobs/run_pipeline.py", "--only", "nope", *paths(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2 and "no stage named 'nope'" in done.stderr


# ------------------------------------------------------------------------------ the lock


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    first = LakeLock(str(tmp_path), command="first").acquire()
    holder = read_holder(tmp_path / "_ops" / LOCK_NAME)
    assert holder is not None and (holder.pid, holder.command) == (os.getpid(), "first")
    with pytest.raises(LakeLocked, match="another run holds the lake: pid"):
        LakeLock(str(tmp_path), command="second", wait=0.2, poll=0.05).acquire()
    first.release()
    with LakeLock(str(tmp_path), command="second"):
        holder = read_holder(tmp_path / "_ops" / LOCK_NAME)
        assert holder is not None and holder.command == "second"
    assert not (tmp_path / "_ops" / LOCK_NAME).exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    lock_file = tmp_path / "_ops" / LOCK_NAME
    lock_file.parent.mkdir(parents=True)
    lock_file.write_text(
        json.dumps(
            {
                "pid": int(dead.stdout),
                "host": socket.gethostname(),
                "command": "run",
                "started_at": "2026-01-01T00:00:00",
            }
        )
    )
    with LakeLock(str(tmp_path), command="after the crash"):
        holder = read_holder(lock_file)
        assert holder is not None and holder.pid == os.getpid()


def test_lock_from_another_host_is_not_taken_over(tmp_path: Path) -> None:
    lock_file = tmp_path / "_ops" / LOCK_NAME
    lock_file.parent.mkdir(parents=True)
    lock_file.write_text(
        json.dumps(
            {"pid": 1, "host": "elsewhere", "command": "run", "started_at": "2026-01-01T00:00:00"}
        )
    )
    with pytest.raises(LakeLocked, match="pid 1 on elsewhere"):
        LakeLock(str(tmp_path), command="here").acquire()
    assert lock_file.exists()


@pytest.mark.parametrize(
    "argv", [["maintain.py"], ["erase_person.py", "--email", "someone@example.org"]]
)
def test_a_lake_writing_job_exits_5_naming_the_holder_before_starting_spark(
    tmp_path: Path, argv: list[str]
) -> None:
    lake = tmp_path / "lake"
    # Without Java a session would exit 3: exit 5 means the lock was checked first.
    no_java = {"JAVA_HOME": str(tmp_path / "no-jdk")}
    with LakeLock(str(lake), command="run --month 2025-06"):
        done = job(*argv, *paths(tmp_path), env=no_java)
        waited = job(*argv, *paths(tmp_path), "--wait", "1", env=no_java)
    assert done.returncode == 5, done.stderr
    assert f"pid {os.getpid()} on {socket.gethostname()}" in done.stderr
    assert "run --month 2025-06" in done.stderr and "--wait" in done.stderr
    assert "Traceback" not in done.stderr
    assert waited.returncode == 5, waited.stderr
    assert not (lake / "_ops" / LOCK_NAME).exists()  # released by the holder


def test_a_job_that_only_reads_takes_no_lock(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with LakeLock(str(lake), command="run --month 2025-06"):
        done = job(
            "sql_shell.py",
            "-e",
            "select 1;",
            *paths(tmp_path),
            env={"JAVA_HOME": str(tmp_path / "no-jdk")},
        )
    assert done.returncode == 3, done.stderr  # it went past the held lock, to the missing Java
    assert "Spark needs Java 17+" in done.stderr


def _who_holds(lake: Path, seen: list[str]) -> None:
    holder = read_holder(lake / "_ops" / LOCK_NAME)
    seen.append(holder.command if holder is not None else "nobody")


def test_run_job_holds_the_lock_while_it_runs_and_releases_it(tmp_path: Path) -> None:
    from cardlake.cli import run_job

    lake = tmp_path / "lake"
    seen: list[str] = []

    def writes(spark: None, cfg: object, args: object) -> None:
        _who_holds(lake, seen)

    def fails(spark: None, cfg: object, args: object) -> None:
        _who_holds(lake, seen)
        raise JobFailed("nobody matched")

    def person(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--email")

    argv = ["--env", "test", "--lake-root", str(lake), "--email", "someone@example.org"]
    ok = run_job(
        writes,
        description="writes",
        add_arguments=person,
        argv=argv,
        needs_spark=False,
        writes_lake=True,
    )
    assert ok == 0
    assert not (lake / "_ops" / LOCK_NAME).exists()
    failed = run_job(
        fails,
        description="fails",
        add_arguments=person,
        argv=argv,
        needs_spark=False,
        writes_lake=True,
    )
    assert failed == 1
    assert not (lake / "_ops" / LOCK_NAME).exists()  # released on the exception too
    # The holder names the job's file, never its arguments (an erasure's name the person).
    assert seen == ["test_cli.py", "test_cli.py"]
    reads = run_job(writes, description="reads", add_arguments=person, argv=argv, needs_spark=False)
    assert reads == 0 and seen[-1] == "nobody"


# ------------------------------------------------------------------------------ with Spark


def _fx_file(landing: Path, month: str, header: str, rows: list[str]) -> None:
    folder = landing / "fx_rates" / month
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"fx_rates_{month}.csv").write_text("\n".join([header, *rows]) + "\n")


@pytest.mark.slow
@pytest.mark.integration
def test_bronze_exits_0_then_1_on_a_contract_break(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _fx_file(landing, "2024-01", FX_HEADER, ["2024-01-01,EUR,0.91", "2024-01-01,GBP,0.79"])
    ok = cardlake("bronze", "--source", "fx_rates", *paths(tmp_path))
    assert ok.returncode == 0, ok.stderr
    lines = " ".join(ok.stdout.split())
    assert "ok bronze" in lines and "bronze.fx_rates 2" in lines  # the summary's row count
    assert "INFO" not in ok.stdout + ok.stderr  # library logs went to the file
    (log_file,) = (tmp_path / "lake" / "_ops" / "logs").glob("*-bronze-*.log")
    assert "jvm." in log_file.read_text()  # the JVM's log4j output too

    # fx_rates refuses new columns (conf/bronze.yaml): the data fails a check, exit 1
    _fx_file(landing, "2024-02", FX_HEADER + ",surprise", ["2024-02-01,EUR,0.92,x"])
    bad = cardlake("bronze", "--source", "fx_rates", *paths(tmp_path))
    assert bad.returncode == 1, bad.stderr
    assert "failed a check" in bad.stderr and "surprise" in bad.stderr
    assert "Traceback" not in bad.stderr
