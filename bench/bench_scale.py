"""How far the pipeline scales on this machine: landing to gold at growing sizes, time and memory.

    python bench/bench_scale.py --customers 2000 11000 55000 [--work /tmp/bench-scale]

For each size, a fresh world: ``cardlake run --only generate,bronze,silver,gold`` with
``synth.n_customers`` set (the generator's other settings as configured: 18 months, about 5
card transactions per customer-month after churn and arrivals), the lake, landing zone and truth
in a folder of their own, the ``large`` session profile (adaptive execution, 8 shuffle
partitions; a 4 GB driver). While it runs, the resident memory of the run's whole process tree
(the Python driver, the JVM, DuckDB inside the matcher) is sampled every half second. Reported per
size: the transactions in ``silver.transactions`` (read with ``deltalake``, no Spark), the seconds
per stage from the run's log, the wall time, the peak memory of the tree and of the largest
process, and the exit code (an out-of-memory run is reported, not hidden). Stops at the first
size that fails: a larger one would fail too.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
STAGES = "generate,bronze,silver,gold"
STAGE_DONE = re.compile(r"stage (\w+) done in ([0-9.]+)s")


@dataclass
class Peak:
    """The highest resident memory seen, of a process tree and of its largest process."""

    tree_bytes: int = 0
    largest_bytes: int = 0
    largest_name: str = ""
    samples: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def watch(self, pid: int, every: float = 0.5) -> None:
        root = psutil.Process(pid)
        while not self.stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes = []
            for proc in procs:
                try:
                    sizes.append((_resident(proc), proc.name()))
                except psutil.Error:  # gone between the listing and the read
                    continue
            if sizes:
                self.samples += 1
                self.tree_bytes = max(self.tree_bytes, sum(rss for rss, _ in sizes))
                rss, name = max(sizes)
                if rss > self.largest_bytes:
                    self.largest_bytes, self.largest_name = rss, name
            self.stop.wait(every)


def _resident(proc: psutil.Process) -> int:
    """The process's proportional set size (shared pages split among their users, so Spark's
    forked Python workers are not counted once each for the pages they share); RSS where the
    system does not give it."""
    try:
        return int(proc.memory_full_info().pss)
    except (AttributeError, psutil.AccessDenied):
        return int(proc.memory_info().rss)


@dataclass(frozen=True)
class Result:
    customers: int
    transactions: int | None
    stages: dict[str, float]
    wall_seconds: float
    peak: Peak
    exit_code: int


def transactions_in(lake: Path) -> int | None:
    """Rows of silver.transactions, counted from the Delta log's file statistics."""
    from deltalake import DeltaTable

    path = lake / "silver" / "transactions"
    if not (path / "_delta_log").is_dir():
        return None
    return int(DeltaTable(str(path)).to_pyarrow_dataset().count_rows())


def run_size(customers: int, work: Path, *, profile: str) -> Result:
    folder = work / f"customers-{customers}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    lake = folder / "lake"
    command = [
        sys.executable,
        "-m",
        "cardlake.cli",
        "run",
        "--env",
        "local",
        "--only",
        STAGES,
        "--lake-root",
        str(lake),
        "--landing-root",
        str(folder / "landing"),
        "--truth-root",
        str(folder / "truth"),
        "--set",
        f"synth.n_customers={customers}",
        "--set",
        f"spark.profile={profile}",
    ]
    console = folder / "console.log"
    started = time.perf_counter()
    with console.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        peak = Peak()
        watcher = threading.Thread(target=peak.watch, args=(process.pid,), daemon=True)
        watcher.start()
        exit_code = process.wait()
        peak.stop.set()
        watcher.join()
    wall = time.perf_counter() - started
    stages: dict[str, float] = {}
    for log in sorted((lake / "_ops" / "logs").glob("*.log")):
        for stage, seconds in STAGE_DONE.findall(log.read_text(errors="replace")):
            stages[stage] = float(seconds)
    if exit_code != 0:
        tail = console.read_text(errors="replace").splitlines()[-15:]
        print(f"  exit {exit_code}; the console's last lines:", *tail, sep="\n    ", flush=True)
    return Result(customers, transactions_in(lake), stages, wall, peak, exit_code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[2000, 11000])
    parser.add_argument("--profile", default="large", help="session profile (spark.profile)")
    parser.add_argument("--work", type=Path, help="keep every size's lake here")
    args = parser.parse_args(argv)
    command = "python bench/bench_scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    work = args.work or Path(tempfile.mkdtemp(prefix="cardlake-bench-scale-"))
    results: list[Result] = []
    try:
        for customers in sorted(args.customers):
            print(f"{customers:,} customers: generate, bronze, silver, gold ...", flush=True)
            result = run_size(customers, work, profile=args.profile)
            results.append(result)
            print(
                f"  {result.transactions or 0:,} transactions in {result.wall_seconds:.0f} s, "
                f"peak {result.peak.tree_bytes / 2**30:.2f} GiB, exit {result.exit_code}",
                flush=True,
            )
            if result.exit_code != 0:
                break
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{command}")
    print(f"landing to gold ({STAGES}), profile {args.profile}, this machine")
    for r in results:
        per_stage = ", ".join(f"{s} {t:.0f}" for s, t in r.stages.items())
        print(
            f"  {r.customers:>7,} customers  {r.transactions or 0:>11,} transactions  "
            f"wall {r.wall_seconds:7.1f} s  ({per_stage})  peak memory "
            f"{r.peak.tree_bytes / 2**30:.2f} GiB (largest process {r.peak.largest_name} "
            f"{r.peak.largest_bytes / 2**30:.2f} GiB)  exit {r.exit_code}"
        )
    return 0 if results and all(r.exit_code == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
