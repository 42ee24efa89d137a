"""What the class archive (cardlake.class_archive) saves a fresh driver JVM.

    python bench/bench_jvm_start.py [--rounds 5]

Each round starts two fresh processes one after the other, without and with the archive (the
order alternates between rounds, so a drift of the machine touches both alike). Each builds
the tests' session (``load_config("test")``), writes a small partitioned Delta table, appends
to it, reads it grouped and deletes from it: what a crash test's or a CLI test's run does
before its own work. Printed per run: the JVM's CPU seconds (user + system, from /proc), the
session's start and the whole job's wall seconds; then each side's medians and the ratios
(with / without). Builds the archive first when this machine has none.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cardlake.class_archive import SWITCH_VAR, build


def child(folder: str) -> None:
    """One fresh JVM's job; prints ``cpu start total`` on its last line."""
    started = time.perf_counter()
    from delta.tables import DeltaTable

    from cardlake.config import load_config
    from cardlake.spark import build_session

    spark = build_session(load_config("test"))
    up = time.perf_counter()
    table = str(Path(folder) / "t")
    rows = spark.range(1000).selectExpr("id", "cast(id % 7 as string) as k", "'2024-01' as month")
    rows.write.format("delta").partitionBy("month").mode("overwrite").save(table)
    rows.limit(10).selectExpr("id", "k", "'2024-02' as month").write.format("delta").mode(
        "append"
    ).save(table)
    spark.read.format("delta").load(table).groupBy("k").count().collect()
    DeltaTable.forPath(spark, table).delete("id < 5")
    done = time.perf_counter()
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    pid = jvm.java.lang.ProcessHandle.current().pid()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    print(f"{cpu:.2f} {up - started:.2f} {done - started:.2f}", flush=True)
    spark.stop()


def run_once(archive: bool) -> tuple[float, float, float]:
    env = {**os.environ, SWITCH_VAR: "on" if archive else "off"}
    with tempfile.TemporaryDirectory(prefix="bench_jvm_start_") as folder:
        done = subprocess.run(
            [sys.executable, __file__, "--child", folder],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu, start, total = (float(x) for x in done.stdout.strip().splitlines()[-1].split())
    return cpu, start, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    os.environ[SWITCH_VAR] = "on"
    if build() is None:
        raise SystemExit("no class archive could be built on this machine (see the warning)")
    runs: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for i in range(args.rounds):
        for archive in (False, True) if i % 2 == 0 else (True, False):
            figures = run_once(archive)
            runs[archive].append(figures)
            label = "with archive   " if archive else "without archive"
            load = os.getloadavg()[0]
            print(
                f"round {i + 1} {label}: JVM CPU {figures[0]:5.1f}s, session {figures[1]:5.1f}s, "
                f"job {figures[2]:5.1f}s (load {load:.1f})",
                flush=True,
            )
    medians = {k: [statistics.median(r[j] for r in v) for j in range(3)] for k, v in runs.items()}
    for name, j in (("JVM CPU", 0), ("session start", 1), ("whole job", 2)):
        off, on = medians[False][j], medians[True][j]
        print(f"{name:13}: without {off:5.1f}s, with {on:5.1f}s, ratio {on / off:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
