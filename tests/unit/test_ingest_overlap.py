"""``overlapped``: the work of ``ragline ingest`` on a few files at once, results in order."""

from __future__ import annotations

import threading
import time

import pytest
from ragline.ingest.pipeline import overlapped


def test_items_are_worked_on_at_once_and_yielded_in_order() -> None:
    # GIVEN work whose first two items each wait for the other (only met if run at once),
    # and whose first item finishes last
    meeting = threading.Barrier(2, timeout=10)
    finished: list[str] = []
    lock = threading.Lock()

    def work(item: int) -> str:
        if item < 2:
            meeting.wait()  # BrokenBarrierError if the two never run together
        if item == 0:
            time.sleep(0.2)
        with lock:
            finished.append(threading.current_thread().name)
        return f"result {item}"

    # WHEN it runs two at a time
    results = list(overlapped(list(range(6)), work, 2, lambda: None))
    # THEN the results come in the items' order, whatever order they finished in
    assert results == [f"result {n}" for n in range(6)]
    # AND the work ran in two threads other than this one
    assert len(set(finished)) == 2
    assert threading.current_thread().name not in finished


def test_each_thread_finishes_once_in_its_own_thread() -> None:
    # GIVEN a finish that records the thread it runs in
    finished: list[str] = []
    worked: set[str] = set()

    def work(item: int) -> int:
        worked.add(threading.current_thread().name)
        return item

    # WHEN five items are worked on by three threads
    assert list(overlapped([1, 2, 3, 4, 5], work, 3, lambda: finished.append(
        threading.current_thread().name))) == [1, 2, 3, 4, 5]  # fmt: skip
    # THEN each thread finished once, in itself (where its connection lives)
    assert len(finished) == 3 == len(set(finished))
    assert worked <= set(finished)


def test_a_failure_is_raised_in_its_turn_after_the_earlier_results() -> None:
    # GIVEN work that fails on the third item
    def work(item: int) -> int:
        if item == 2:
            raise ValueError("item 2 is bad")
        return item

    results: list[int] = []
    before = threading.active_count()
    # WHEN the results are read
    with pytest.raises(ValueError, match="item 2 is bad"):
        for result in overlapped(list(range(5)), work, 2, lambda: None):
            results.append(result)
    # THEN the results before it came first, and no thread is left running
    assert results == [0, 1]
    assert threading.active_count() == before


def test_stopping_early_takes_no_new_item_and_waits_for_those_under_way() -> None:
    # GIVEN many slow items
    started: list[int] = []
    finished: list[int] = []

    def work(item: int) -> int:
        started.append(item)
        time.sleep(0.05)
        finished.append(item)
        return item

    # WHEN the reader stops after the first result
    results = overlapped(list(range(50)), work, 2, lambda: None)
    assert next(results) == 0
    results.close()  # type: ignore[attr-defined]
    # THEN every item started has finished (each is whole), and most were never started
    assert sorted(started) == sorted(finished)
    assert len(started) < 10


def test_one_worker_works_in_the_callers_thread() -> None:
    # GIVEN one worker WHEN items are worked on THEN no thread is started, nor finished
    finished: list[str] = []
    names = list(
        overlapped(
            [1, 2], lambda _: threading.current_thread().name, 1, lambda: finished.append("x")
        )
    )
    assert names == [threading.current_thread().name] * 2
    assert finished == []
