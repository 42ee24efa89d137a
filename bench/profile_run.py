"""Where a pipeline run's time goes: Spark's own event log, summed per stage and call site.

    python bench/profile_run.py [--env local] [--lake-root DIR] [--only bronze,silver] [--top 8]
        [-- any other `cardlake run` options]
    python bench/profile_run.py --event-log DIR_OR_FILE --run-log FILE     # an earlier run

The test suite's built lake (``tests/lake_fixture.py``), profiled in one command:

    python bench/profile_run.py --env test --lake-root /tmp/built/lake -- \
        --landing-root /tmp/built/landing --truth-root /tmp/built/truth \
        --set synth.seed=5 --set synth.n_customers=300 --set quality.stage_checks=true

Runs ``cardlake run`` with Spark's event log on (uncompressed), through a copy of ``conf/`` in a
temporary folder (``CARDLAKE_CONF_DIR``), so the project's settings stay untouched; the lake
goes to ``--lake-root`` (default: a fresh temporary folder; the landing zone is the configured
one, generated when empty). Then, for each stage, from the run's log (its stage lines) and the
event log:

- wall: the stage's time;
- jobs: the Spark job time inside it (jobs running at once count each);
- cores busy: task-seconds per wall second, i.e. how many cores Spark's tasks kept busy (the
  rest of the machine is the driver: Python, planning, Delta commits, or idle);
- the call sites with the most job time: ``file:line`` in cardlake for a job Python started,
  else the JVM operation (a Delta write's jobs, a checkpoint).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGE_LINE = re.compile(r"^(\S+ \S+) INFO cardlake\.pipeline: stage (\w+)(:| done in)")


def _events(path: Path) -> Iterator[dict]:
    """The events of a log file or of a rolling log's folder (zstd parts through ``zstd``)."""
    files = (
        sorted(p for p in path.iterdir() if p.name.startswith("events_"))
        if path.is_dir()
        else [path]
    )
    for f in files:
        if f.suffix in {".zstd", ".zst"}:
            if shutil.which("zstd") is None:
                raise SystemExit(f"{f} is zstd-compressed and no zstd command is installed")
            text = subprocess.run(
                ["zstd", "-dc", str(f)], capture_output=True, check=False
            ).stdout.decode()
        else:
            text = f.read_text()
        for line in text.splitlines():
            try:  # the last line of a log still being written may be cut
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def _stage_windows(run_log: Path) -> list[tuple[str, float, float]]:
    """(stage, start, end) in epoch seconds, from the pipeline's stage lines."""
    starts: dict[str, float] = {}
    windows = []
    for line in run_log.read_text().splitlines():
        m = STAGE_LINE.match(line)
        if not m:
            continue
        at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if m.group(3) == ":":
            starts[m.group(2)] = at
        elif m.group(2) in starts:
            windows.append((m.group(2), starts.pop(m.group(2)), at))
    return windows


def _site(job_start: dict) -> str:
    props = job_start.get("Properties") or {}
    site = props.get("callSite.short") or ""
    if "cardlake/" in site:
        return "cardlake/" + site.split("cardlake/", 1)[1]
    stages = job_start.get("Stage Infos") or [{}]
    return (site or stages[-1].get("Stage Name", "?")).split(" at ")[0]


def summarise(event_log: Path, run_log: Path, top: int) -> str:
    """The per-stage table and each stage's top call sites."""
    jobs: dict[int, list] = {}
    tasks: list[tuple[float, float]] = []
    for e in _events(event_log):
        kind = e.get("Event")
        if kind == "SparkListenerJobStart":
            jobs[e["Job ID"]] = [e["Submission Time"] / 1000, None, _site(e)]
        elif kind == "SparkListenerJobEnd" and e["Job ID"] in jobs:
            jobs[e["Job ID"]][1] = e["Completion Time"] / 1000
        elif kind == "SparkListenerTaskEnd":
            info = e["Task Info"]
            tasks.append((info["Launch Time"] / 1000, info["Finish Time"] / 1000))
    out = [f"{'stage':10} {'wall':>8} {'jobs':>6} {'job time':>9} {'cores busy':>10}"]
    details = []
    for stage, start, end in _stage_windows(run_log):
        inside = [j for j in jobs.values() if j[1] is not None and start <= j[0] <= end]
        busy = sum(f - s for s, f in tasks if start <= s <= end)
        wall = end - start
        job_time = sum(j[1] - j[0] for j in inside)
        out.append(
            f"{stage:10} {wall:7.1f}s {len(inside):6d} {job_time:8.1f}s"
            f" {busy / wall if wall else 0:10.2f}"
        )
        if not inside:
            continue
        by_site: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
        for s, f, site in inside:
            by_site[site][0] += 1
            by_site[site][1] += f - s
        ranked = sorted(by_site.items(), key=lambda kv: -kv[1][1])[:top]
        details.append(f"\n{stage}: the call sites with the most job time")
        details += [f"  {t:7.1f}s {int(n):5d} jobs  {site}" for site, (n, t) in ranked]
    return "\n".join(out + details)


def run_profiled(
    env: str, lake_root: Path, only: str | None, extra: list[str] | None = None
) -> tuple[Path, Path]:
    """Runs the pipeline with the event log on; returns (event log folder, run log).

    ``extra``: more ``cardlake run`` options, passed as given (``--set``, ``--landing-root``).
    """
    events = lake_root / "_ops" / "eventlog"
    events.mkdir(parents=True, exist_ok=True)
    conf_dir = Path(tempfile.mkdtemp(prefix="cardlake-profile-conf-"))
    shutil.copytree(ROOT / "conf", conf_dir, dirs_exist_ok=True)
    env_file = conf_dir / f"{env}.yaml"
    overlay = yaml.safe_load(env_file.read_text()) or {}
    overlay.setdefault("spark", {}).setdefault("conf", {}).update(
        {
            "spark.eventLog.enabled": "true",
            "spark.eventLog.dir": events.resolve().as_uri(),
            "spark.eventLog.compress": "false",
            "spark.eventLog.rolling.enabled": "false",
        }
    )
    env_file.write_text(yaml.safe_dump(overlay, sort_keys=False))
    command = [
        sys.executable,
        "-m",
        "cardlake.cli",
        "run",
        "--env",
        env,
        "--lake-root",
        str(lake_root),
        *(["--only", only] if only else []),
        *(extra or []),
    ]
    print("running:", " ".join(command), flush=True)
    done = subprocess.run(
        command, cwd=ROOT, check=False, env={**os.environ, "CARDLAKE_CONF_DIR": str(conf_dir)}
    )
    shutil.rmtree(conf_dir, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"cardlake run exited {done.returncode}")
    logs = sorted((lake_root / "_ops" / "logs").glob("*-run-*.log"))
    app = sorted(events.iterdir(), key=lambda p: p.stat().st_mtime)
    if not logs or not app:
        raise SystemExit(f"no run log or event log under {lake_root}")
    return app[-1], logs[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local")
    parser.add_argument("--lake-root", type=Path, help="default: a fresh temporary folder")
    parser.add_argument("--only", help="comma-separated stages (cardlake run --only)")
    parser.add_argument("--top", type=int, default=8, help="call sites shown per stage")
    parser.add_argument("--event-log", type=Path, help="summarise this event log instead")
    parser.add_argument("--run-log", type=Path, help="the run log of --event-log's run")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.event_log:
        if not args.run_log:
            parser.error("--event-log needs --run-log (the stage lines come from it)")
        event_log, run_log = args.event_log, args.run_log
    else:
        lake = args.lake_root or Path(tempfile.mkdtemp(prefix="cardlake-profile-")) / "lake"
        event_log, run_log = run_profiled(args.env, lake, args.only, extra)
    print(summarise(event_log, run_log, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
