"""The silver and gold quality gate on a built lake, with each suite's frame projected to the
columns its checks read (``layers.checked_columns``) and without, alternately.

    python bench/bench_gate_columns.py --lake-root LAKE [--rounds 2]

Prints each round's seconds and whether the two give the same (suite, check, success,
observed) for every expectation. Appends to the lake's ``_ops.dq_results`` as a gate does.
"""

from __future__ import annotations

import argparse
import sys
import time

from cardlake.config import load_config
from cardlake.quality import layers
from cardlake.spark import build_logged_session
from cardlake.tables import Tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake-root", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    cfg = load_config("local", overrides={"paths.lake_root": args.lake_root})
    spark = build_logged_session(cfg, command="bench-gate-columns")
    tables = Tables.from_config(spark, cfg)
    suites = [s for s in layers.SUITES if s.table.split(".")[0] in {"silver", "gold"}]
    projected = layers.checked_columns

    def whole(df, checks):  # type: ignore[no-untyped-def]
        return df

    results: dict[str, set[tuple[str, str, bool, str]]] = {}
    for round_ in range(args.rounds):
        for name, columns in (("whole", whole), ("projected", projected)):
            layers.checked_columns = columns  # type: ignore[assignment]
            started = time.perf_counter()
            outcomes = layers.run_suites(tables, suites=suites)
            seconds = time.perf_counter() - started
            results[name] = {
                (o.suite_name, r.check.expectation + str(r.check.kwargs), r.success, r.observed)
                for o in outcomes
                for r in o.results
            }
            print(f"round {round_ + 1} {name:9} {len(outcomes)} suites {seconds:6.1f}s", flush=True)
    layers.checked_columns = projected
    same = results["whole"] == results["projected"]
    print("same results:", same)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
