"""Risk: points scorecard, reason codes and tiers into gold.customer_risk; LR vs GBT.

    python jobs/train_risk.py --env local
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cardlake.config import Config
from cardlake.jobs import log, run_job


def run(spark: Any, cfg: Config, args: argparse.Namespace) -> None:
    """Trains, registers and scores (see cardlake.ml.job.run_risk)."""
    from cardlake.ml import run_risk

    log.info("risk: %s", json.dumps(run_risk(spark, cfg), sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    return run_job(run, description=__doc__.splitlines()[0], argv=argv)


if __name__ == "__main__":
    sys.exit(main())
