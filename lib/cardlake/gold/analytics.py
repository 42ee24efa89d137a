"""The stakeholder questions as SQL files (``sql/analytics/*.sql``), run against gold by name.

python -m cardlake.gold.analytics                 # every query
python -m cardlake.gold.analytics plan_mix        # those whose file name contains a word
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from cardlake.config import PROJECT_ROOT, Config

ANALYTICS_DIR = PROJECT_ROOT / "sql" / "analytics"
MAX_ROWS = 50


def queries(folder: Path = ANALYTICS_DIR) -> dict[str, str]:
    """File stem to SQL text (a trailing ``;`` removed), in file-name order."""
    return {
        path.stem: path.read_text().strip().rstrip(";") for path in sorted(folder.glob("*.sql"))
    }


def run_query(spark: SparkSession, name: str, folder: Path = ANALYTICS_DIR) -> DataFrame:
    """One analytics query by file stem, as a DataFrame."""
    return spark.sql(queries(folder)[name])


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="run queries whose file name contains these")


def _run(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> None:
    from cardlake.tables import Tables

    Tables.from_config(spark, cfg)  # registers bronze, silver and gold by name
    for name, text in queries().items():
        if args.names and not any(word in name for word in args.names):
            continue
        print(f"-- {name}")
        spark.sql(text).show(MAX_ROWS, truncate=False)


def main(argv: list[str] | None = None) -> int:
    from cardlake.jobs import run_job

    return run_job(
        _run, description="Run the gold analytics SQL", add_arguments=_arguments, argv=argv
    )


if __name__ == "__main__":
    sys.exit(main())
