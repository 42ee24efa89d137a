"""Build silver from bronze: cleaned tables, resolved customers with stable keys.

    python jobs/build_silver.py --env local [--month 2025-06]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cardlake.config import Config
from cardlake.jobs import run_job


def run(spark: Any, cfg: Config, args: argparse.Namespace) -> None:
    from cardlake.silver.job import run as build

    build(spark, cfg, month=args.month)


def main(argv: list[str] | None = None) -> int:
    return run_job(run, description=__doc__.splitlines()[0], argv=argv)


if __name__ == "__main__":
    sys.exit(main())
