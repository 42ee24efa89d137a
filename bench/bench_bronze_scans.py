"""What a bronze run spends looking for unrecorded batches: full scans against the version guard.

    python bench/bench_bronze_scans.py [--env local] [--rounds 2]

On the configured lake (``make run`` builds it), times the full scan for batch ids of every
bronze and quarantine table (what every run did before ``_ops.bronze_checked``), then the same
check through the guard (a table still at its noted version is not scanned), per round. The
first round runs on a fresh JVM, as a run's start does.
"""

from __future__ import annotations

import argparse
import sys
import time

from cardlake.bronze import ingest as I
from cardlake.bronze.contracts import CONTRACTS
from cardlake.config import load_config
from cardlake.spark import build_logged_session
from cardlake.tables import Tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    cfg = load_config(args.env)
    spark = build_logged_session(cfg, command="bench-bronze-scans")
    tables = Tables.from_config(spark, cfg)
    recorded = I.Recorded.read(tables)
    targets = [
        t
        for name in I.INGEST_ORDER
        for t in I._source_targets(CONTRACTS[name])
        if tables.exists(t[0])
    ]
    for round_ in range(args.rounds):
        started = time.perf_counter()
        for table, column, where in targets:
            I._batches_of(tables, table, column, where)
        scans = time.perf_counter() - started
        started = time.perf_counter()
        I._roll_back_unrecorded(tables, targets, recorded, "bench")
        guarded = time.perf_counter() - started
        noted = sum(t in recorded.checked for t, _, _ in targets)
        print(
            f"round {round_ + 1}: {len(targets)} tables ({noted} noted): full scans "
            f"{scans:.1f}s, with the guard {guarded:.2f}s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
