"""The bronze stage: every landing source into ``bronze.<source>``, each file once.

The same shape as every stage, ``run(tables, settings, *, month)``; the reading, checking and
writing live in :mod:`cardlake.bronze.ingest`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cardlake.bronze.contracts import CONTRACTS, BronzeConfig
from cardlake.bronze.ingest import BronzeContractError, DataQualityError, SourceReport, run_bronze
from cardlake.config import Settings
from cardlake.errors import JobFailed
from cardlake.quality.freshness import run_freshness
from cardlake.quality.layers import docs_dir
from cardlake.tables import Tables

log = logging.getLogger("cardlake.bronze")


def run(
    tables: Tables,
    settings: Settings,
    *,
    month: str | None,
    sources: Sequence[str] | None = None,
) -> list[SourceReport]:
    """Ingests the landing zone into bronze; returns one report per source.

    Args:
        tables: the lake.
        settings: loaded at the edge; reads ``BronzeConfig`` and the landing and lake paths.
        month: ingest only this month's drops; None for every month found in landing.
        sources: only these sources (default: all, in reference order).

    Raises:
        JobFailed: a file broke its contract, a critical expectation failed, or a source is
            stale (``freshness.<source>``, see :mod:`cardlake.quality.freshness`) (exit code 1).
    """
    cfg = settings.config
    bronze = settings.of(BronzeConfig)
    docs = docs_dir(cfg) if bronze.data_docs else None  # none on an object store
    try:
        reports = run_bronze(
            tables.spark,
            tables,
            bronze,
            landing_root=cfg.paths.landing_root,
            token_key=bronze.token_key(cfg.env),
            sources=sources,
            months=[month] if month else None,
            data_docs_dir=docs,
            pandas_max_rows=cfg.quality.pandas_max_rows,
        )
    except (BronzeContractError, DataQualityError) as exc:
        raise JobFailed(str(exc)) from exc
    stale = [
        o
        for o in run_freshness(
            tables,
            sources=list(sources or CONTRACTS),
            settings=bronze.freshness,
            data_docs_dir=docs,
            pandas_max_rows=cfg.quality.pandas_max_rows,
        )
        if not o.success
    ]
    for r in reports:
        log.info(
            "%-22s files %4d new, %3d skipped | rows read %7d accepted %7d quarantined "
            "%5d duplicate %4d",
            r.source,
            r.files_ingested,
            r.files_skipped,
            r.rows_read,
            r.rows_accepted,
            r.rows_quarantined,
            r.rows_duplicate,
        )
    if stale:  # after the report: what was delivered is in bronze, but later stages wait
        raise JobFailed("; ".join(o.failure_message() for o in stale))
    return reports
