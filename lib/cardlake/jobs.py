"""Kept for jobs written against the old harness: everything here now lives in
:mod:`cardlake.cli` (the harness and exit codes) and :mod:`cardlake.errors`."""

from __future__ import annotations

import logging

from cardlake.cli import (
    EXIT_CRASH,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
    base_parser,
    month_arg,
    overrides_from,
    run_job,
)
from cardlake.errors import JobFailed

log = logging.getLogger("cardlake")

__all__ = [
    "EXIT_CRASH",
    "EXIT_ENVIRONMENT",
    "EXIT_FAILED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_USAGE",
    "JobFailed",
    "base_parser",
    "month_arg",
    "overrides_from",
    "run_job",
]
