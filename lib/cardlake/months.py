"""Month arithmetic on ``YYYY-MM`` strings, as column functions and plain Python: the one copy.

A month is also an integer index (``year * 12 + month - 1``), so consecutive months are
consecutive integers in both Python and Spark.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pyspark.sql import Column
from pyspark.sql import functions as F

# No capturing group: Great Expectations' pandas engine passes the pattern to str.contains,
# which warns on every validated column when the pattern captures.
MONTH_PATTERN = re.compile(r"^[0-9]{4}-(?:0[1-9]|1[0-2])$")


def is_month(value: str) -> bool:
    """Whether ``value`` is a ``YYYY-MM`` month."""
    return bool(MONTH_PATTERN.match(value))


def parse_month(value: str) -> str:
    """``value`` if it is ``YYYY-MM``; a ValueError naming it otherwise."""
    if not is_month(value):
        raise ValueError(f"expected a month as YYYY-MM, got {value!r}")
    return value


def index_of_month(month: str) -> int:
    """``"2024-03"`` to 2024 * 12 + 2."""
    return int(month[:4]) * 12 + int(month[5:7]) - 1


def month_of_index(index: int) -> str:
    """The inverse of :func:`index_of_month`."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def shift(month: str, delta: int) -> str:
    """``shift("2024-01", -1) == "2023-12"``."""
    return month_of_index(index_of_month(month) + delta)


def window(month: str, months: int) -> list[str]:
    """The ``months`` months ending with ``month``, oldest first."""
    return [shift(month, -k) for k in range(months - 1, -1, -1)]


def month_range(start: str, count: int) -> list[str]:
    """``count`` consecutive months from ``start``, oldest first."""
    return list(iter_months(start, count))


def iter_months(start: str, count: int) -> Iterator[str]:
    first = index_of_month(start)
    return (month_of_index(first + i) for i in range(count))


# -- column functions ---------------------------------------------------------------------


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
