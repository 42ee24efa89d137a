"""Train, register and score the cross-sell propensity model (tracked in MLflow).

    python jobs/train_propensity.py --env local
    spark-submit jobs/train_propensity.py --env cluster

A thin shell over the harness (``cardlake ml --help`` lists the options); exit codes as
every job (0 done, 1 data failed a check, 2 usage, 3 no Java or connector, 4 crash, 5 lake
locked).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cardlake.cli import main as cardlake


def main(argv: Sequence[str] | None = None) -> int:
    return cardlake(["ml", "--model", "propensity", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
