"""Stream mode and the thin ``jobs/generate_data.py`` entry point."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from cardlake.synth import SynthParams, stream
from tests.infra.services import load_job

ROOT = Path(__file__).resolve().parents[2]
SMALL = SynthParams(seed=3, n_customers=60)


def test_stream_writes_bounded_json_event_files(tmp_path: Path) -> None:
    out = tmp_path / "events"
    summary = stream(
        landing_dir=out, params=SMALL, rate_per_second=0, max_events=120, events_per_file=50
    )
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"events-2025-06-{i:06d}.jsonl" for i in range(3)]
    events = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(events) == summary.events == 120
    assert len({e["event_id"] for e in events}) == 120
    times = [e["event_time"] for e in events]
    assert times == sorted(times) and times[0].startswith("2025-06")
    assert {e["instrument_type"] for e in events} <= {"card", "wallet"}


def test_stream_is_paced_and_stops_at_its_time_limit(tmp_path: Path) -> None:
    t0 = time.monotonic()
    paced = stream(
        landing_dir=tmp_path / "a",
        params=SMALL,
        rate_per_second=200,
        max_events=100,
        events_per_file=20,
    )
    assert paced.events == 100 and time.monotonic() - t0 >= 0.4
    capped = stream(
        landing_dir=tmp_path / "b",
        params=SMALL,
        rate_per_second=20,
        max_events=10_000,
        max_seconds=0.5,
        events_per_file=5,
    )
    assert capped.events < 100 and capped.seconds < 3


def test_stream_replays_the_same_events_for_the_same_seed(tmp_path: Path) -> None:
    for name in ("a", "b"):
        stream(landing_dir=tmp_path / name, params=SMALL, rate_per_second=0, max_events=30)

    def without_sent_time(name: str) -> list[dict[str, object]]:
        lines = (tmp_path / name / "events-2025-06-000000.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "sent_ms"} for x in lines]

    assert without_sent_time("a") == without_sent_time("b")


@pytest.fixture()
def conf_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    base = yaml.safe_load((conf / "base.yaml").read_text())
    base["paths"]["landing_root"] = str(tmp_path / "landing")
    base["paths"]["truth_root"] = str(tmp_path / "truth")
    base["synth"] = {"seed": 3, "n_customers": 60}
    (conf / "base.yaml").write_text(yaml.safe_dump(base))
    monkeypatch.setenv("CARDLAKE_CONF_DIR", str(conf))
    return tmp_path


def test_job_writes_one_month_and_exits_0(conf_dir: Path) -> None:
    assert load_job("generate_data.py").main(["--env", "local", "--month", "2024-02"]) == 0
    months = {p.name for p in (conf_dir / "landing" / "crm_customers").iterdir()}
    assert months == {"2024-02"}
    assert (conf_dir / "truth" / "persons" / "part-0.parquet").is_file()


def test_job_stream_writes_events_under_landing(conf_dir: Path) -> None:
    assert load_job("generate_data.py").main(["--stream", "--rate", "0", "--max-events", "7"]) == 0
    lines = [
        x for f in (conf_dir / "landing" / "events").iterdir() for x in f.read_text().splitlines()
    ]
    assert len(lines) == 7


@pytest.mark.parametrize(
    "argv",
    [
        ["--month", "2024-13"],
        ["--month", "1999-01"],
        ["--env", "no-such-env"],
        ["--stream", "--month", "2024-02"],
        ["--max-events", "-1", "--stream"],
        ["--bogus"],
    ],
)
def test_job_rejects_bad_arguments_with_exit_2(conf_dir: Path, argv: list[str]) -> None:
    assert load_job("generate_data.py").main(argv) == 2
    assert not (conf_dir / "landing").exists()
