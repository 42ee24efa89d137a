"""Time and peak memory to generate N transactions with the synthetic source generator.

    python bench/bench_synth.py --transactions 10000000

The customer count is calibrated from the default world's expected transactions per customer,
so the run lands near the requested count; the exact count is printed. Memory is bounded by
one month of transactions (months are generated and written one at a time).
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from cardlake.synth import SynthParams, generate
from cardlake.synth.vocab import ARCHETYPES
from cardlake.synth.world import build_world

CALIBRATION_CUSTOMERS = 2000
MARGIN = 1.02  # the expectation is a mean; aim a little high so the run reaches the target


def expected_tx_per_customer(params: SynthParams) -> float:
    """Expected transactions per customer over the history, from a small world."""
    world = build_world(replace(params, n_customers=CALIBRATION_CUSTOMERS))
    scale = np.array([a["tx_scale"] for a in ARCHETYPES.values()])[world.archetype]
    total = params.tx_per_customer_month * (scale[:, None] * world.engagement).sum()
    return float(total) / CALIBRATION_CUSTOMERS


def _dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=SynthParams().seed)
    parser.add_argument("--out", type=Path, help="keep the output here (default: temp, removed)")
    args = parser.parse_args(argv)

    base = SynthParams(seed=args.seed)
    per_customer = expected_tx_per_customer(base)
    n_customers = max(10, math.ceil(MARGIN * args.transactions / per_customer))
    params = replace(
        base, n_customers=n_customers, n_merchants=max(base.n_merchants, n_customers // 20)
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="cardlake-bench-"))
    try:
        t0 = time.perf_counter()
        summary = generate(landing_root=out / "landing", truth_root=out / "truth", params=params)
        elapsed = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        landing_mb = _dir_bytes(out / "landing") / 1e6
        truth_mb = _dir_bytes(out / "truth") / 1e6
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    records = sum(summary.records.values())
    print(f"customers          {n_customers}")
    print(f"months             {len(summary.months)}")
    print(f"transactions       {summary.transactions}")
    print(f"all source records {records}")
    print(f"files              {summary.files}")
    print(f"elapsed_s          {elapsed:.1f}")
    print(f"transactions_per_s {summary.transactions / elapsed:,.0f}")
    print(f"records_per_s      {records / elapsed:,.0f}")
    print(f"peak_rss_mb        {peak_mb:.0f}")
    print(f"landing_mb         {landing_mb:.0f}")
    print(f"truth_mb           {truth_mb:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
