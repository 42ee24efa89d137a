"""Great Expectations on a built lake: its Spark engine against its pandas engine on the driver.

    python bench/bench_quality.py [--lake-root lake]

Runs every layer suite (cardlake.quality.layers) whose table exists, once with each engine, in
one session: the frames (foreign keys and rules joined in by Spark) are computed and cached for
the Spark engine, and collected through Arrow for the pandas one. Prints both times and any
expectation whose verdict or observed value differs between the engines.
"""

from __future__ import annotations

import argparse
import sys
import time

from cardlake.config import load_config
from cardlake.quality import layers
from cardlake.quality.expectations import ValidationOutcome, Validator
from cardlake.spark import build_session
from cardlake.tables import Tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake-root", default="lake")
    args = parser.parse_args(argv)
    cfg = load_config("local", overrides={"paths.lake_root": args.lake_root})
    spark = build_session(cfg)
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
    for engine, max_rows in (("spark", None), ("pandas", 10**12)):
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
    print(f"ratio spark / pandas: {timings['spark'] / timings['pandas']:.1f}")
    differences = 0
    for table, spark_outcome in outcomes["spark"].items():
        for a, b in zip(spark_outcome.results, outcomes["pandas"][table].results, strict=True):
            if (a.success, a.observed) != (b.success, b.observed):
                differences += 1
                print(
                    f"differs: {table} {a.check.describe()}: spark {a.success} {a.observed} "
                    f"| pandas {b.success} {b.observed}"
                )
    print(f"{differences} expectation(s) differ between the engines")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
