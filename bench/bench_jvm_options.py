"""Which JVM options make a pipeline stage quicker on a small machine.

    python bench/bench_jvm_options.py [--stage gold] [--repeat 2] [--env local] \
        [--set= --set=-XX:TieredStopAtLevel=1 --set=-XX:+UseParallelGC]

Runs ``cardlake <stage>`` on the configured lake (``make run`` builds it; gold, ml and analytics
rewrite their own tables, so a stage can run again and again) once per option set and repeat,
the option sets interleaved so a drift of the machine touches them alike. Each run is a fresh
process with a fresh JVM, the options given to it through ``JAVA_TOOL_OPTIONS``. Prints each
run's wall time (JVM start included) and each set's median and its ratio to the first set.
Write each set as ``--set=OPTIONS`` (options start with a dash); ``--set=`` is the defaults.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OPTIONS = ("", "-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC")


def run_once(stage: str, env: str, options: str) -> float:
    """Seconds of one ``cardlake <stage>`` process; raises when it fails."""
    child_env = {**os.environ, "JAVA_TOOL_OPTIONS": options}
    if not options:
        child_env.pop("JAVA_TOOL_OPTIONS", None)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cardlake.cli", stage, "--env", env],
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"cardlake {stage} with {options!r} exited {done.returncode}:\n{done.stderr[-2000:]}"
        )
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="gold", choices=["gold", "ml", "analytics"])
    parser.add_argument("--env", default="local")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--set",
        dest="options",
        action="append",
        help="JVM options of one run set (repeatable; default: %(default)s)",
    )
    args = parser.parse_args(argv)
    args.options = args.options or list(DEFAULT_OPTIONS)
    times: dict[str, list[float]] = {o: [] for o in args.options}
    for round_ in range(args.repeat):
        for options in args.options:
            seconds = run_once(args.stage, args.env, options)
            times[options].append(seconds)
            print(f"round {round_ + 1}  {options or '(defaults)':40} {seconds:7.1f}s", flush=True)
    base = statistics.median(times[args.options[0]])
    print(f"\ncardlake {args.stage}, median of {args.repeat}:")
    for options, values in times.items():
        median = statistics.median(values)
        print(f"  {options or '(defaults)':40} {median:7.1f}s  ratio {median / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
