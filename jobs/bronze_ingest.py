"""Bronze ingestion: every landing source into bronze.<source>, each file once.

    python jobs/bronze_ingest.py --env local [--source card_transactions] [--month 2024-03]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from cardlake.config import Config
from cardlake.jobs import JobFailed, log, run_job


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cardlake.bronze.contracts import INGEST_ORDER

    parser.add_argument("--source", choices=INGEST_ORDER, help="only this source (default: all)")


def run(spark: Any, cfg: Config, args: argparse.Namespace) -> None:
    """Ingests the landing zone of ``cfg`` into bronze (see cardlake.bronze.ingest)."""
    from cardlake.bronze import (
        BronzeContractError,
        DataQualityError,
        load_bronze_config,
        run_bronze,
    )
    from cardlake.tables import Tables

    settings = load_bronze_config(cfg.env)
    tables = Tables.from_config(spark, cfg)
    started = time.perf_counter()
    try:
        reports = run_bronze(
            spark, tables, settings, landing_root=cfg.paths.landing_root,
            token_key=settings.token_key(cfg.env),
            sources=[args.source] if args.source else None,
            months=[args.month] if args.month else None,
            data_docs_dir=cfg.lake_path("_ops", "data_docs") if settings.data_docs else None,
        )
    except (BronzeContractError, DataQualityError) as exc:
        raise JobFailed(str(exc)) from exc
    for r in reports:
        log.info("%-22s files %4d new, %3d skipped | rows read %7d accepted %7d quarantined "
                 "%5d duplicate %4d", r.source, r.files_ingested, r.files_skipped, r.rows_read,
                 r.rows_accepted, r.rows_quarantined, r.rows_duplicate)
    log.info("bronze done in %.1f s", time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    return run_job(run, description=__doc__.splitlines()[0], add_arguments=add_arguments,
                   argv=argv)


if __name__ == "__main__":
    sys.exit(main())
