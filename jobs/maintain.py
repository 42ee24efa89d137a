"""Compact every lake table and VACUUM it with its layer's retention (``make maintain``).

    python jobs/maintain.py --env local [--table gold.fact_transactions]
    python jobs/maintain.py --env local --dictionary   # _ops.data_dictionary, docs/...md

Retention per layer lives in ``conf/governance.yaml`` ``retention_hours``. Prints one line per
table: the retention applied and the files removed. Holds the lake's lock as ``cardlake`` does:
exit 5 while another run holds it (``--wait [SECONDS]`` waits for it instead).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cardlake.config import Config
from cardlake.jobs import run_job


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", help="only this table (layer.table)")
    parser.add_argument(
        "--dictionary",
        action="store_true",
        help="instead: write _ops.data_dictionary and docs/data_dictionary.md",
    )


def run(spark: Any, cfg: Config, args: argparse.Namespace) -> None:
    from cardlake.config import PROJECT_ROOT
    from cardlake.governance import dictionary
    from cardlake.governance.maintenance import maintain
    from cardlake.governance.settings import load_governance
    from cardlake.tables import Tables

    tables = Tables.from_config(spark, cfg)
    if args.dictionary:
        found = dictionary.publish(
            tables, load_governance(cfg.env), markdown=PROJECT_ROOT / "docs" / "data_dictionary.md"
        )
        missing = dictionary.undescribed(found)
        print(
            f"{dictionary.DICTIONARY_TABLE}: {len(found)} columns; "
            f"{len(missing)} not described in conf/governance.yaml: {', '.join(missing)}"
        )
        return
    for done in maintain(tables, load_governance(cfg.env), only=args.table):
        print(
            f"{done.table}: retention {done.retention_hours} h, {done.files_removed} files removed"
        )


def main(argv: list[str] | None = None) -> int:
    return run_job(
        run,
        description=__doc__.splitlines()[0],
        add_arguments=_arguments,
        argv=argv,
        writes_lake=True,
    )


if __name__ == "__main__":
    sys.exit(main())
