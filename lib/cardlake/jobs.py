"""What every ``jobs/*.py`` entry point shares: arguments, config, session, exit codes.

Exit codes mean the same for every job, so schedulers can act on them:

- 0: done (including "nothing new to do");
- 1: the job ran and failed on its data (quality check, contract violation, conflict);
- 2: bad arguments or configuration (fix the call or conf/, re-running will not help);
- 3: the environment is not usable (no suitable Java, Delta connector missing).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from cardlake.config import ENV_VAR, Config, ConfigError, load_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
log = logging.getLogger("cardlake")


class JobFailed(RuntimeError):
    """The job's data failed a check; the message says which file, row, field or expectation."""


def month_arg(value: str) -> str:
    """argparse type for ``YYYY-MM``."""
    if not _MONTH.match(value):
        raise argparse.ArgumentTypeError(f"expected a month as YYYY-MM, got {value!r}")
    return value


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every job takes: ``--env``, ``--month``, ``--lake-root``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--env",
        default=os.environ.get(ENV_VAR, "local"),
        help="config overlay: local, test, cluster (default: $CARDLAKE_ENV or local)",
    )
    parser.add_argument("--month", type=month_arg, help="process only this month (YYYY-MM)")
    parser.add_argument("--lake-root", help="override paths.lake_root (a folder or URI)")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(args, "lake_root", None):
        overrides["paths.lake_root"] = args.lake_root
    return overrides


def run_job(
    run: Callable[[Any, Config, argparse.Namespace], Any],
    *,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: list[str] | None = None,
    needs_spark: bool = True,
) -> int:
    """Parses arguments, loads config, builds the session, calls ``run``, returns an exit code.

    Args:
        run: ``run(spark, cfg, args)``; ``spark`` is None when ``needs_spark`` is False.
        description: the job's one-line help.
        add_arguments: adds the job's own options to the parser.
        argv: arguments (default: ``sys.argv[1:]``).
        needs_spark: whether to build a SparkSession.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    parser = base_parser(description)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.env, overrides=overrides_from(args))
    except ConfigError as exc:
        print(f"cardlake: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    spark = None
    if needs_spark:
        from cardlake.spark import JavaError, build_session

        try:
            spark = build_session(cfg)
        except JavaError as exc:
            print(f"cardlake: {exc}", file=sys.stderr)
            return EXIT_ENVIRONMENT
    from cardlake.tables import ConcurrentModificationError, TableError

    try:
        run(spark, cfg, args)
    except JobFailed as exc:
        print(f"cardlake: job failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ConcurrentModificationError as exc:
        print(f"cardlake: concurrent change, nothing committed; re-run: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except TableError as exc:
        print(f"cardlake: table error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ConfigError as exc:
        print(f"cardlake: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
