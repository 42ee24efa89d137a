"""Named boundaries between a stage's writes, where crash tests make a run die.

A stage calls :func:`crash_point` before each write; when the stage's environment variable names
that point, the process ends there with ``os._exit`` (no ``finally``, no handler, as a kill
would), leaving the lake exactly as a crash at that boundary does.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("cardlake")

CRASH_EXIT_CODE = 86


def crash_point(env: str, point: str, *, stage: str) -> None:
    """Dies at ``point`` when the environment variable ``env`` names it; otherwise nothing."""
    if os.environ.get(env) == point:
        log.error("%s: dying at %s (%s is set)", stage, point, env)
        os._exit(CRASH_EXIT_CODE)
