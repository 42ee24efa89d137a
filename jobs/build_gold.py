"""Build gold from silver: star schema, monthly customer features and KPIs.

    python jobs/build_gold.py --env local                  # every month in silver.transactions
    python jobs/build_gold.py --env local --month 2025-06  # rewrite only that month

Exit codes as every job: 0 done, 1 failed on data (a fact key resolving to no dimension row),
2 bad arguments or configuration, 3 environment.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cardlake.config import Config
from cardlake.jobs import run_job


def run(spark: Any, cfg: Config, args: argparse.Namespace) -> None:
    from cardlake.gold.job import run as build

    build(spark, cfg, month=args.month)


def main(argv: list[str] | None = None) -> int:
    return run_job(run, description=__doc__.splitlines()[0], argv=argv)


if __name__ == "__main__":
    sys.exit(main())
