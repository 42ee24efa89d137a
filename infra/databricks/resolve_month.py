"""First task of the Databricks job: the month every stage processes, as a task value.

The explicit ``--month`` parameter wins; empty, it is the month before ``--trigger-date`` (the
schedule fires early in a month for the month just ended). Downstream tasks read it as
``{{tasks.resolve_month.values.month}}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def month_before(day: dt.date) -> str:
    first = day.replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def resolve(month: str, trigger_date: str) -> str:
    """``month`` if given (checked as YYYY-MM), else the month before ``trigger_date``."""
    if month:
        if not _MONTH.match(month):
            raise ValueError(f"--month must be YYYY-MM, got {month!r}")
        return month
    return month_before(dt.date.fromisoformat(trigger_date[:10]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--month", default="")
    parser.add_argument("--trigger-date", default=dt.date.today().isoformat())
    args = parser.parse_args(argv)
    try:
        month = resolve(args.month, args.trigger_date)
    except ValueError as exc:
        print(f"cardlake: {exc}", file=sys.stderr)
        return 2
    print(f"month: {month}")
    try:  # on Databricks only: hand the month to the downstream tasks
        from databricks.sdk.runtime import dbutils  # type: ignore[import-not-found]
    except ImportError:
        return 0
    dbutils.jobs.taskValues.set(key="month", value=month)
    return 0


if __name__ == "__main__":
    sys.exit(main())
