"""Build silver from bronze: cleaned tables, resolved customers with stable keys.

    python jobs/build_silver.py --env local [--month 2025-06] [--full-resolve]

Entity resolution matches only new person records against the people already resolved; with
``--full-resolve`` it retrains the matcher and resolves every record again (keys stay stable
either way).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cardlake.config import Config
from cardlake.jobs import run_job


def run(spark: Any, cfg: Config, args: argparse.Namespace) -> None:
    from cardlake.silver.job import run as build

    build(spark, cfg, month=args.month, full_resolve=args.full_resolve)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--full-resolve",
        action="store_true",
        help="retrain the matcher and resolve every person record, not only new ones",
    )


def main(argv: list[str] | None = None) -> int:
    return run_job(
        run, description=__doc__.splitlines()[0], add_arguments=add_arguments, argv=argv
    )


if __name__ == "__main__":
    sys.exit(main())
