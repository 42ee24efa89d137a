"""cardlake.threads: ``in_parallel`` waits for an item's prerequisites; ``prefetched`` gives results
in order, the next items computed beside the body."""

from __future__ import annotations

import threading
import time

import pytest

from cardlake.threads import in_parallel, prefetched


def test_results_come_in_order_while_the_next_items_are_computed() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def slow_square(n: int) -> int:
        with lock:
            started.append(n)
        time.sleep(0.05 * (5 - n))  # the first items are the slowest: order must still hold
        return n * n

    seen = []
    for item, result in prefetched(slow_square, [0, 1, 2, 3, 4], threads=2):
        if item == 0:
            time.sleep(0.3)  # the body's work: items 1 and 2 are computed meanwhile
            with lock:
                assert set(started) == {0, 1, 2}  # two ahead, not more
        seen.append((item, result))
    assert seen == [(0, 0), (1, 1), (2, 4), (3, 9), (4, 16)]


def test_a_failure_is_raised_at_its_items_turn_and_nothing_more_starts() -> None:
    started: list[int] = []

    def fails_on_two(n: int) -> int:
        started.append(n)
        if n == 2:
            raise ValueError("item 2 is bad")
        return n

    seen = []
    with pytest.raises(ValueError, match="item 2 is bad"):
        for item, _ in prefetched(fails_on_two, list(range(10)), threads=2):
            seen.append(item)
    assert seen == [0, 1]
    assert max(started) <= 4  # at most two ahead of the failed item when it was raised


def test_no_threads_or_one_item_runs_in_the_callers_thread() -> None:
    caller = threading.get_ident()
    for threads, items in ((0, [1, 2]), (2, [1])):
        ran_in = [t for _, t in prefetched(lambda _: threading.get_ident(), items, threads=threads)]
        assert ran_in == [caller] * len(items)


def test_an_item_waits_for_the_items_it_comes_after_though_a_thread_is_free() -> None:
    events: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> str:
        with lock:
            events.append(f"start {name}")
        time.sleep({"a": 0.4, "b": 0.0, "c": 0.0}[name])  # b ends first: its thread is free
        with lock:
            events.append(f"end {name}")
        return name.upper()

    assert in_parallel(work, ["a", "b", "c"], threads=2, after={"c": ["a"]}) == ["A", "B", "C"]
    assert events.index("end b") < events.index("end a") < events.index("start c")


def test_a_failed_prerequisite_releases_its_waiter_and_is_raised_after_all() -> None:
    ran: list[str] = []

    def work(name: str) -> str:
        ran.append(name)
        if name == "a":
            raise ValueError("a broke")
        return name

    with pytest.raises(ValueError, match="a broke"):
        in_parallel(work, ["a", "b", "c"], threads=2, after={"c": ["a"]})
    assert sorted(ran) == ["a", "b", "c"]  # c ran once a had failed (the caller decides more)


def test_a_prerequisite_that_comes_later_is_refused_before_anything_runs() -> None:
    ran: list[str] = []
    with pytest.raises(ValueError, match="'a' waits for 'c'"):
        in_parallel(ran.append, ["a", "b", "c"], threads=2, after={"a": ["c"]})
    assert ran == []


def test_items_need_not_be_hashable_without_prerequisites() -> None:
    points = [{"depth": 3}, {"depth": 4}]  # a model's grid points
    assert in_parallel(lambda p: p["depth"] * 2, points, threads=2) == [6, 8]
