"""bench/profile_run.py: a run's Spark time per stage and call site, from its event log."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from bench.profile_run import summarise

T0 = datetime(2026, 12, 4, 10, 0, 0).timestamp()


def _job(job_id: int, start: float, end: float, site: str) -> list[dict]:
    return [
        {
            "Event": "SparkListenerJobStart",
            "Job ID": job_id,
            "Submission Time": (T0 + start) * 1000,
            "Properties": {"callSite.short": site},
            "Stage Infos": [],
        },
        {"Event": "SparkListenerJobEnd", "Job ID": job_id, "Completion Time": (T0 + end) * 1000},
    ]


def _task(start: float, end: float) -> dict:
    return {
        "Event": "SparkListenerTaskEnd",
        "Task Info": {"Launch Time": (T0 + start) * 1000, "Finish Time": (T0 + end) * 1000},
    }


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(T0 + seconds).strftime("%Y-%m-%d %H:%M:%S,000")


def test_job_time_and_busy_cores_are_summed_per_stage_and_call_site(tmp_path: Path) -> None:
    events = [
        *_job(0, 1, 4, "collect at /x/lib/cardlake/bronze/ingest.py:674"),
        *_job(1, 5, 6, "collect at /x/lib/cardlake/bronze/ingest.py:674"),
        *_job(2, 12, 20, "save at NativeMethodAccessorImpl.java:0"),
        _task(1, 4),
        _task(1, 3),
        _task(5, 6),  # 6 task-seconds in bronze's 10 s
        _task(12, 20),
    ]
    log = tmp_path / "events"
    log.write_text("\n".join(json.dumps(e) for e in events) + '\n{"Event": "cut')
    run_log = tmp_path / "run.log"
    run_log.write_text(
        "\n".join(
            [
                f"{_stamp(0)} INFO cardlake.pipeline: stage bronze: landing files into bronze",
                f"{_stamp(10)} INFO cardlake.pipeline: stage bronze done in 10.0s",
                f"{_stamp(10)} INFO cardlake.pipeline: stage silver: cleaned tables",
                f"{_stamp(26)} INFO cardlake.pipeline: stage silver done in 16.0s",
            ]
        )
    )
    lines = summarise(log, run_log, top=5).splitlines()
    assert lines[1].split() == ["bronze", "10.0s", "2", "4.0s", "0.60"]
    assert lines[2].split() == ["silver", "16.0s", "1", "8.0s", "0.50"]
    words = [" ".join(line.split()) for line in lines]
    assert "4.0s 2 jobs cardlake/bronze/ingest.py:674" in words
    assert words.index("silver: the call sites with the most job time") + 1 == words.index(
        "8.0s 1 jobs save"
    )


def test_options_after_a_double_dash_go_to_cardlake_run(tmp_path: Path, monkeypatch) -> None:
    import bench.profile_run as profile_run

    seen: dict = {}

    def fake_run(env: str, lake: Path, only: str | None, extra: list[str] | None = None):
        seen.update(env=env, lake=lake, only=only, extra=extra)
        return tmp_path / "events", tmp_path / "run.log"

    monkeypatch.setattr(profile_run, "run_profiled", fake_run)
    monkeypatch.setattr(profile_run, "summarise", lambda *a: "")
    assert (
        profile_run.main(
            [
                "--env",
                "test",
                "--lake-root",
                str(tmp_path / "lake"),
                "--",
                "--set",
                "synth.n_customers=300",
                "--truth-root",
                "/t",
            ]
        )
        == 0
    )
    assert seen == {
        "env": "test",
        "lake": tmp_path / "lake",
        "only": None,
        "extra": ["--set", "synth.n_customers=300", "--truth-root", "/t"],
    }
    profile_run.main(["--only", "bronze", "--lake-root", str(tmp_path / "lake")])  # no "--"
    assert seen["only"] == "bronze" and seen["extra"] == []
