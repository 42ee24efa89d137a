"""Month arithmetic on ``YYYY-MM`` strings, as column functions and plain Python."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def month_index(col: Column) -> Column:
    """``"2024-03"`` to 2024 * 12 + 2: consecutive months are consecutive integers."""
    return F.substring(col, 1, 4).cast("int") * 12 + F.substring(col, 6, 2).cast("int") - 1


def month_start(col: Column) -> Column:
    """The first day of the month, as a date."""
    return F.to_date(F.concat(col, F.lit("-01")))


def month_end(col: Column) -> Column:
    """The last day of the month, as a date."""
    return F.last_day(month_start(col))


def next_month_start_ts(col: Column) -> Column:
    """The first instant after the month (timestamps before it belong to the month or earlier)."""
    return F.add_months(month_start(col), 1).cast("timestamp")


def month_of(col: Column) -> Column:
    """A date or timestamp to its ``YYYY-MM``."""
    return F.date_format(col, "yyyy-MM")


def shift(month: str, delta: int) -> str:
    """``shift("2024-01", -1) == "2023-12"``."""
    index = int(month[:4]) * 12 + int(month[5:7]) - 1 + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def window(month: str, months: int) -> list[str]:
    """The ``months`` months ending with ``month``, oldest first."""
    return [shift(month, -k) for k in range(months - 1, -1, -1)]
