"""Run the whole pipeline end to end (what ``make run`` does).

python jobs/run_pipeline.py --env local [--month 2025-06] [--only bronze,silver]
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from cardlake.config import Config
from cardlake.jobs import run_job
from cardlake.pipeline import STAGES, run_pipeline

log = logging.getLogger("cardlake.jobs.run_pipeline")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only", help=f"comma-separated stages to run, of: {', '.join(s.name for s in STAGES)}"
    )


def run(spark: Any, cfg: Config, args: argparse.Namespace) -> None:
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    timings = run_pipeline(spark, cfg, month=args.month, only=only)
    total = sum(timings.values())
    log.info(
        "pipeline done in %.1fs: %s", total, ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
    )


def main(argv: list[str] | None = None) -> int:
    return run_job(run, description=__doc__.splitlines()[0], add_arguments=_arguments, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
