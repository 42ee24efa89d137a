"""The CLV fit's PyTensor compile modes: FAST_COMPILE against FAST_RUN (C code, PyTensor's default).

    python bench/bench_clv.py [--customers 2000 20000 60000] [--seed 7]

For each size, a seeded summary of customers (BG/NBD-shaped: Poisson repeat days, recency
within the observed span, gamma spend) is fitted by ``cardlake.analytics.clv.fit`` once per
mode, each in a fresh process with an empty compile cache, as on a fresh machine or CI. Prints
the fit times, their ratio and the largest relative difference between the two modes' fitted
parameters. ``cardlake.analytics.clv.compile_mode`` picks between them by the number of
customers fitted, from these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MODES = ("FAST_COMPILE", "FAST_RUN")


def fit_once(mode: str, customers: int, seed: int) -> None:
    """Runs in the child process: prints a JSON line with the fit's time and parameters."""
    import numpy as np
    import pandas as pd

    from cardlake.analytics import clv

    rng = np.random.default_rng(seed)
    frequency = rng.poisson(3, customers).astype(float)
    age = rng.integers(60, 540, customers).astype(float)
    recency = np.minimum(age, frequency * rng.uniform(5, 40, customers))
    summary = pd.DataFrame(
        {
            "customer_key": np.arange(customers),
            "frequency": frequency,
            "recency": recency,
            "T": age,
            "monetary_value": np.where(frequency > 0, rng.gamma(2.0, 30.0, customers), 0.0),
        }
    )
    start = time.perf_counter()
    fitted = clv.fit(summary, seed=seed, fit_customers=customers, mode=mode)
    print(json.dumps({"seconds": time.perf_counter() - start, "params": fitted.params()}))


def run_child(mode: str, customers: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-clv-") as cache:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                mode,
                "--customers",
                str(customers),
                "--seed",
                str(seed),
            ],
            env={**os.environ, "PYTENSOR_FLAGS": f"compiledir={cache}"},
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[2000, 20000, 60000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        fit_once(args.child, args.customers[0], args.seed)
        return 0
    print(
        f"{'customers':>10} {'FAST_COMPILE s':>15} {'FAST_RUN s':>11} {'ratio':>6} "
        f"{'max rel diff':>13}"
    )
    for customers in args.customers:
        runs = {mode: run_child(mode, customers, args.seed) for mode in MODES}
        ours, peer = runs["FAST_COMPILE"], runs["FAST_RUN"]
        diff = max(
            abs(ours["params"][k] - v) / max(abs(v), 1e-12) for k, v in peer["params"].items()
        )
        print(
            f"{customers:>10} {ours['seconds']:>15.1f} {peer['seconds']:>11.1f} "
            f"{peer['seconds'] / ours['seconds']:>6.1f} {diff:>13.1e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
