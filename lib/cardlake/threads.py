"""Independent Spark work from two threads at once, as Spark's ``CrossValidator(parallelism=2)``.

A small fit or write is a chain of short Spark jobs with driver work between them (planning,
Python, a Delta commit) that leaves cores idle; a second thread fills them. Each thread submits
its own jobs to the one session and inherits a copy of its local properties. Results come back
in the order of the items; the first failure is raised once all have finished.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")

THREADS = 2


def in_parallel(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    threads: int = THREADS,
    after: Mapping[T, Collection[T]] | None = None,
) -> list[R]:
    """``[fn(item) for item in items]``, ``threads`` at a time, results in order.

    Args:
        after: items that must have finished (done or failed) before an item starts; each must
            come before it in ``items``, so that a thread has always taken it already and a
            waiting thread never waits for an item no thread can take. With ``after``, items
            must be hashable; without it, any items (grid points as dicts).

    Raises:
        ValueError: an item of ``after`` comes after the item waiting for it, or not at all.
    """
    from concurrent.futures import ThreadPoolExecutor

    if after:  # items are hashable here: they key the waits
        for index, item in enumerate(items):
            late = [w for w in after.get(item, ()) if w not in items[:index]]
            if late:
                raise ValueError(f"{item!r} waits for {late[0]!r}, which does not come before it")
    if len(items) <= 1 or threads <= 1:
        return [fn(item) for item in items]
    task = fn
    if after:
        waits = after
        finished = {item: threading.Event() for item in items}

        def task(item: T) -> R:
            try:
                for first in waits.get(item, ()):
                    finished[first].wait()
                return fn(item)
            finally:
                finished[item].set()

    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        return list(pool.map(_inheriting(task), items))


def _inheriting(fn: Callable[[T], R]) -> Callable[[T], R]:
    """``fn`` run in another thread with the caller's Spark local properties and session tags."""
    from py4j.clientserver import ClientServer
    from pyspark import SparkContext
    from pyspark.sql import SparkSession
    from pyspark.util import inheritable_thread_target

    if SparkContext._active_spark_context is None or not isinstance(
        SparkContext._gateway, ClientServer
    ):
        return fn  # no Spark yet, or threads not pinned to JVM threads: nothing to carry over
    # In a thread of our own (a model trained beside another) the JVM may have no active
    # session for it: the running one is then the session.
    session = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()

    def own_properties(item: T) -> R:
        # pyspark hands every thread the caller's one Java Properties object: a property one
        # thread sets (the ML stage's model name) would relabel the other's jobs. A copy each.
        jvm = session.sparkContext._jsc.sc()
        jvm.setLocalProperties(jvm.getLocalProperties().clone())
        return fn(item)

    return cast("Callable[[T], R]", inheritable_thread_target(session)(own_properties))


def prefetched(
    fn: Callable[[T], R], items: Sequence[T], *, threads: int = THREADS
) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` in order, the next ``threads`` items computed while one is used.

    For a loop whose body is driver work (pandas, Python) over frames Spark computes: the
    collects of the following items run beside the body. At most ``threads + 1`` results are
    held at once; an exception from ``fn`` is raised when its item's turn comes.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    if threads <= 0 or len(items) <= 1:
        for item in items:
            yield item, fn(item)
        return
    task = _inheriting(fn)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures: dict[int, Future[R]] = {}

        def start(index: int) -> None:
            if index < len(items):
                futures[index] = pool.submit(task, items[index])

        for index in range(threads):
            start(index)
        try:
            for index, item in enumerate(items):
                result = futures.pop(index).result()
                start(index + threads)
                yield item, result
        finally:  # the caller stopped early or failed: nothing more starts
            for future in futures.values():
                future.cancel()
