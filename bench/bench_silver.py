"""The silver stage of two versions of the code, alternately, on copies of one bronze lake.

    .venv/bin/python bench/bench_silver.py --old REV [--new REV] [--rounds 2] [--work DIR]

Build the bronze lake once (the default data, as ``make run`` makes it):

    cardlake run --env local --only generate,bronze --lake-root /tmp/helper-silver/lake \
        --landing-root /tmp/helper-silver/landing --truth-root /tmp/helper-silver/truth

Each round copies that lake twice and runs ``cardlake run --env local --only silver`` on each
copy, old code first, then new (a first build: a full resolution, as in ``make run``). A
version is ``lib/`` of a commit taken out with ``git archive`` and put first on the
``PYTHONPATH``; ``--new`` omitted, the old commit's with ``lib/cardlake/silver`` copied from
the working tree at the start (edits made meanwhile, here or elsewhere, stay out). ``conf/``
is the checkout's for both (``CARDLAKE_HOME``). The machine is shared and its speed drifts, so
the figure to read is the ratio new/old of each round, each pair run back to back, with the
load (``uptime``) before each run. Every run's silver tables are counted (delta-rs, no Spark)
and its entity-resolution figures read from ``silver.er_metrics``; a difference between old
and new is reported.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SILVER = Path("cardlake", "silver")
DEFAULT_BUILT = Path("/tmp/helper-silver")
STAGE_SECONDS = re.compile(r"\bsilver ([\d.]+)s")
# The figures that say what the resolution found, not how long it took.
ER_FIGURES = ("pairwise_precision", "pairwise_recall", "pairwise_f1", "bcubed_f1", "records")


def _export(rev: str, into: Path) -> Path:
    """``lib/`` of ``rev`` under ``into``; returns the folder to put on the PYTHONPATH."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "lib"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "lib"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _run(lib: Path, built: Path, lake: Path, log: Path) -> float:
    """One silver stage on a fresh copy of the built lake; its seconds as the pipeline says."""
    shutil.copytree(built / "lake", lake)
    env = {**os.environ, "CARDLAKE_HOME": str(ROOT)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(lib), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-c",
        "import sys; from cardlake.cli import main; sys.exit(main())",
        "run",
        "--env",
        "local",
        "--only",
        "silver",
        "--lake-root",
        str(lake),
        "--landing-root",
        str(built / "landing"),
        "--truth-root",
        str(built / "truth"),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"silver failed ({done.returncode}), see {log}")
    found = STAGE_SECONDS.search(done.stdout)
    return float(found.group(1)) if found else wall


def _results(lake: Path) -> dict[str, object]:
    """Rows of every silver table, and the entity-resolution figures."""
    from deltalake import DeltaTable

    counts: dict[str, object] = {}
    for table in sorted((lake / "silver").iterdir()):
        if DeltaTable.is_deltatable(str(table)):
            counts[table.name] = DeltaTable(str(table)).to_pyarrow_table().num_rows
    metrics = DeltaTable(str(lake / "silver" / "er_metrics")).to_pyarrow_table().to_pylist()
    for row in metrics:
        if row["metric"] in ER_FIGURES:
            counts[f"er {row['metric']}"] = round(row["value"], 4)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the commit to compare against")
    parser.add_argument("--new", default=None, help="default: the working tree")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--built", type=Path, default=DEFAULT_BUILT, help="lake, landing, truth")
    parser.add_argument("--work", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_silver_", dir=args.work))
    versions = {"old": _export(args.old, work / "old")}
    if args.new:
        versions["new"] = _export(args.new, work / "new")
    else:  # the old commit with the working tree's silver as it is now (not others' edits)
        versions["new"] = _export(args.old, work / "new")
        shutil.rmtree(versions["new"] / SILVER)
        shutil.copytree(ROOT / "lib" / SILVER, versions["new"] / SILVER)
    seconds: dict[str, list[float]] = {"old": [], "new": []}
    results: dict[str, dict[str, object]] = {}
    try:
        for round_ in range(args.rounds):
            for name, lib in versions.items():
                lake = work / f"{name}-{round_}" / "lake"
                load = _load()
                spent = _run(lib, args.built, lake, work / f"{name}-{round_}.log")
                seconds[name].append(spent)
                print(
                    f"round {round_} {name}: silver {spent:6.1f}s  (load before {load})",
                    flush=True,
                )
                found = _results(lake)
                if name in results and results[name] != found:
                    print(f"  {name} differs from its own first round: {found}")
                results.setdefault(name, found)
                for run_log in (lake / "_ops" / "logs").glob("*.log"):  # the stage's own log
                    shutil.copy(run_log, work / f"{name}-{round_}.{run_log.name}")
                shutil.rmtree(lake.parent)
            ratio = seconds["new"][-1] / seconds["old"][-1]
            print(f"round {round_}: new/old {ratio:.3f}", flush=True)
    finally:
        print(f"logs in {work}")
    ratios = [n / o for n, o in zip(seconds["new"], seconds["old"], strict=True)]
    old, new = (statistics.median(seconds[name]) for name in ("old", "new"))
    print(
        f"medians: old {old:.1f}s, new {new:.1f}s; new/old per round "
        + ", ".join(f"{r:.3f}" for r in ratios)
    )
    for key in sorted(set(results["old"]) | set(results["new"])):
        old, new = results["old"].get(key), results["new"].get(key)
        print(f"  {key:32} {old!s:>10} {new!s:>10}{'' if old == new else '  DIFFERENT'}")
    return 0 if results["old"] == results["new"] else 1


if __name__ == "__main__":
    sys.exit(main())
