"""Generate the synthetic landing zone and its ground truth (no Spark).

    python jobs/generate_data.py --env local [--month 2025-06] [--stream --rate 50]
    python jobs/generate_data.py --env local --month 2025-06

A thin shell over the harness: ``cardlake generate --help`` lists the options; exit codes as every
job (0 done, 1 data failed a check, 2 usage, 3 no Java or connector, 4 crash, 5 lake locked).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cardlake.cli import main as cardlake


def main(argv: Sequence[str] | None = None) -> int:
    return cardlake(["generate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
