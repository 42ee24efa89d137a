"""Great Expectations on a built lake: its Spark engine against its pandas engine on the driver.

    python bench/bench_quality.py [--lake-root lake]

Runs every layer suite (cardlake.quality.layers) whose table exists, once with each engine, in
one session: the frames (foreign keys and rules joined in by Spark) are computed and cached for
the Spark engine, and collected through Arrow for the pandas one. Prints both times and any
expectation whose verdict or observed value differs between the engines.

Then the pandas engine as a stage's gate runs it (``layers.run_suites``), nothing cached: each
frame collected just before its suite, against the next frames collected while GE checks this
one (``cardlake.threads.prefetched``), alternately, ``--rounds`` times each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from cardlake.config import load_config
from cardlake.quality import layers
from cardlake.quality.expectations import ValidationOutcome, Validator
from cardlake.spark import build_logged_session
from cardlake.tables import Tables
from cardlake.threads import prefetched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake-root", default="lake")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gate-only", action="store_true", help="skip the engine comparison")
    args = parser.parse_args(argv)
    cfg = load_config("local", overrides={"paths.lake_root": args.lake_root})
    spark = build_logged_session(cfg, command="bench-quality")
    tables = Tables.from_config(spark, cfg)
    frames = [
        (
            suite,
            layers.with_rules(
                layers.with_foreign_keys(tables.read(suite.table), suite.foreign_keys, tables.read),
                suite.rules,
            ),
        )
        for suite in layers.SUITES
        if tables.exists(suite.table) and all(tables.exists(fk.parent) for fk in suite.foreign_keys)
    ]
    print(f"{len(frames)} suites, {sum(len(s.expectations()) for s, _ in frames)} expectations")
    timings: dict[str, float] = {}
    outcomes: dict[str, dict[str, ValidationOutcome]] = {}
    engines = () if args.gate_only else (("spark", None), ("pandas", 10**12))
    for engine, max_rows in engines:
        validator = Validator(pandas_max_rows=max_rows)
        started = time.perf_counter()
        outcomes[engine] = {}
        for suite, df in frames:
            cached = df.cache()
            outcomes[engine][suite.table] = validator.validate(
                cached, suite.table, suite.expectations()
            )
            cached.unpersist()
        timings[engine] = time.perf_counter() - started
        print(f"{engine:7s} engine: {timings[engine]:7.1f} s", flush=True)
    if timings:
        print(f"ratio spark / pandas: {timings['spark'] / timings['pandas']:.1f}")
    differences = 0
    for table, spark_outcome in outcomes.get("spark", {}).items():
        for a, b in zip(spark_outcome.results, outcomes["pandas"][table].results, strict=True):
            if (a.success, a.observed) != (b.success, b.observed):
                differences += 1
                print(
                    f"differs: {table} {a.check.describe()}: spark {a.success} {a.observed} "
                    f"| pandas {b.success} {b.observed}"
                )
    if timings:
        print(f"{differences} expectation(s) differ between the engines")

    gate = Validator()  # the pandas engine with the default row limit, as a stage's gate
    times: dict[int, list[float]] = {0: [], 2: []}
    for _ in range(args.rounds):
        for threads in times:
            started = time.perf_counter()
            for (suite, df), ready in prefetched(
                lambda f: gate.collect(f[1]), frames, threads=threads
            ):
                gate.validate(df, suite.table, suite.expectations(), collected=ready)
            times[threads].append(time.perf_counter() - started)
    one, ahead = statistics.median(times[0]), statistics.median(times[2])
    print(f"\npython bench/bench_quality.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(
        f"the gate over {len(frames)} suites, median of {args.rounds}: one frame at a time "
        f"{one:.1f} s, the next two collected beside {ahead:.1f} s (ratio {ahead / one:.2f})"
    )
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
