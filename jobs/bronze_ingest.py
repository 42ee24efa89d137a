"""Bronze ingestion: every landing source into bronze.<source>, each file once.

    python jobs/bronze_ingest.py --env local [--month 2025-06] [--source card_transactions]
    spark-submit jobs/bronze_ingest.py --env cluster --month 2025-06

A thin shell over the harness: ``cardlake bronze --help`` lists the options; exit codes as every
job (0 done, 1 data failed a check, 2 usage, 3 no Java or connector, 4 crash, 5 lake locked).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cardlake.cli import main as cardlake


def main(argv: Sequence[str] | None = None) -> int:
    return cardlake(["bronze", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
