"""Train, register and score the segmentation model(s) (tracked in MLflow).

    python jobs/train_segmentation.py --env local
    spark-submit jobs/train_segmentation.py --env cluster

A thin shell over the harness (``cardlake ml --help`` lists the options); exit codes as
every job (0 done, 1 data failed a check, 2 usage, 3 no Java or connector, 4 crash, 5 lake
locked).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cardlake.cli import main as cardlake


def main(argv: Sequence[str] | None = None) -> int:
    return cardlake(["ml", "--model", "segmentation", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
