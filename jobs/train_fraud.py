"""Fraud: LR and GBT with a feedback delay; alerts with reasons into gold.fraud_alerts.

    python jobs/train_fraud.py --env local
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cardlake.config import Config
from cardlake.jobs import log, run_job


def run(spark: Any, cfg: Config, args: argparse.Namespace) -> None:
    """Trains, registers and scores (see cardlake.ml.job.run_fraud)."""
    from cardlake.ml import run_fraud

    log.info("fraud: %s", json.dumps(run_fraud(spark, cfg), sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    return run_job(run, description=__doc__.splitlines()[0], argv=argv)


if __name__ == "__main__":
    sys.exit(main())
