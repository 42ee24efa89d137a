"""Maintenance: compact every table, then VACUUM it with its layer's retention.

Time travel reaches back as far as the retention of the table's layer
(``conf/governance.yaml`` ``retention_hours``); files older than that which no retained version
needs are deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cardlake.governance.erasure import lake_tables

if TYPE_CHECKING:
    from cardlake.governance.settings import GovernanceSettings
    from cardlake.tables import Tables

log = logging.getLogger("cardlake.governance.maintenance")


@dataclass(frozen=True)
class Maintained:
    table: str
    retention_hours: int
    files_removed: int


def maintain(
    tables: Tables, governance: GovernanceSettings, *, only: str | None = None
) -> list[Maintained]:
    """Compacts and vacuums every Delta table of the lake (or only ``only``)."""
    done = []
    for name in lake_tables(tables.lake_root, spark=tables.spark):
        if only and name != only:
            continue
        hours = governance.retention_hours[name.partition(".")[0]]
        tables.optimize(name)
        removed = tables.vacuum(name, retention_hours=hours)
        log.info("%s: compacted; %d files older than %dh removed", name, len(removed), hours)
        done.append(Maintained(name, hours, len(removed)))
    return done
