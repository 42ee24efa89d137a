"""Moved to :mod:`cardlake.months` (the one copy of month arithmetic); re-exported here for
modules still importing it from gold."""

from cardlake.months import (
    month_end,
    month_index,
    month_of,
    month_start,
    next_month_start_ts,
    shift,
    window,
)

__all__ = [
    "month_end",
    "month_index",
    "month_of",
    "month_start",
    "next_month_start_ts",
    "shift",
    "window",
]
