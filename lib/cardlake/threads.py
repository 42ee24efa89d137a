"""Independent Spark work from two threads at once, as Spark's ``CrossValidator(parallelism=2)``.

A small fit or write is a chain of short Spark jobs with driver work between them (planning,
Python, a Delta commit) that leaves cores idle; a second thread fills them. Each thread submits
its own jobs to the one session and inherits its local properties. Results come back in the
order of the items; the first failure is raised once all have finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

THREADS = 2


def in_parallel(fn: Callable[[T], R], items: Sequence[T], *, threads: int = THREADS) -> list[R]:
    """``[fn(item) for item in items]``, ``threads`` at a time, results in order."""
    from concurrent.futures import ThreadPoolExecutor

    from pyspark.util import inheritable_thread_target

    if len(items) <= 1 or threads <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        return list(pool.map(inheritable_thread_target(fn), items))
