"""The work queue's guarantees: de-duplication, one worker per key, delays, per-key back-off, shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from services.shared.clock import ManualClock
from services.shared.kube import backoff, workqueue

pytestmark = pytest.mark.timeout(10)


def a_queue(clock: ManualClock | None = None, **kwargs) -> workqueue.WorkQueue[str]:
    return workqueue.WorkQueue(clock=clock or ManualClock(), **kwargs)


def drain(queue: workqueue.WorkQueue[str]) -> list[str]:
    keys = []
    while (key := queue.get(timeout=0)) is not None:
        keys.append(key)
        queue.done(key)
    return keys


def test_keys_come_out_in_order_added():
    queue = a_queue()
    for key in ["a", "b", "c"]:
        queue.add(key)
    assert drain(queue) == ["a", "b", "c"]


def test_a_key_added_many_times_before_a_worker_takes_it_is_processed_once():
    queue = a_queue()
    for key in ["a", "b", "a", "a", "b"]:
        queue.add(key)
    assert len(queue) == 2
    assert drain(queue) == ["a", "b"]


def test_a_key_being_processed_is_not_handed_out_again():
    queue = a_queue()
    queue.add("a")
    assert queue.get(timeout=0) == "a"
    queue.add("a")
    assert queue.get(timeout=0) is None
    assert len(queue) == 0


def test_a_key_re_added_while_processing_is_processed_again_after_done():
    queue = a_queue()
    queue.add("a")
    assert queue.get(timeout=0) == "a"
    queue.add("a")
    queue.add("a")
    queue.done("a")
    assert drain(queue) == ["a"]


def test_done_without_re_add_does_not_requeue():
    queue = a_queue()
    queue.add("a")
    assert queue.get(timeout=0) == "a"
    queue.done("a")
    assert len(queue) == 0


def test_add_after_waits_for_the_clock():
    clock = ManualClock()
    queue = a_queue(clock)
    queue.add_after("a", 5.0)
    assert len(queue) == 0
    clock.advance(4.9)
    assert queue.get(timeout=0) is None
    clock.advance(0.1)
    assert queue.get(timeout=0) == "a"


def test_add_after_keeps_the_earlier_time_for_the_same_key():
    clock = ManualClock()
    queue = a_queue(clock)
    queue.add_after("a", 10.0)
    queue.add_after("a", 2.0)
    queue.add_after("a", 30.0)
    clock.advance(2.0)
    assert drain(queue) == ["a"]
    clock.advance(30.0)
    assert drain(queue) == []


def test_add_after_without_delay_adds_now():
    queue = a_queue()
    queue.add_after("a", 0)
    assert drain(queue) == ["a"]


def test_a_due_key_that_is_already_queued_is_not_duplicated():
    clock = ManualClock()
    queue = a_queue(clock)
    queue.add_after("a", 1.0)
    queue.add("a")
    clock.advance(1.0)
    assert drain(queue) == ["a"]


def test_rate_limited_adds_back_off_exponentially_per_key_until_forgotten():
    clock = ManualClock()
    policy = backoff.BackoffPolicy(initial=1.0, factor=2.0, cap=5.0, jitter=0.0)
    queue = a_queue(clock, item_backoff=policy)
    waits = []
    for _ in range(5):
        queue.add_rate_limited("a")
        waited = 0.0
        while queue.get(timeout=0) is None:
            clock.advance(0.5)
            waited += 0.5
        queue.done("a")
        waits.append(waited)
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert queue.num_requeues("a") == 5
    queue.forget("a")
    assert queue.num_requeues("a") == 0
    queue.add_rate_limited("a")
    clock.advance(1.0)
    assert queue.get(timeout=0) == "a"


def test_back_off_is_per_key():
    clock = ManualClock()
    queue = a_queue(clock, item_backoff=backoff.BackoffPolicy(initial=1.0, factor=10.0, cap=100.0, jitter=0.0))
    queue.add_rate_limited("a")
    queue.add_rate_limited("a")
    queue.add_rate_limited("b")
    clock.advance(1.0)
    assert drain(queue) == ["a", "b"]  # "a" keeps its first (earlier) schedule, "b" has its own


def test_get_blocks_until_a_key_is_added():
    queue = workqueue.WorkQueue[str]()
    got = []
    worker = threading.Thread(target=lambda: got.append(queue.get()))
    worker.start()
    time.sleep(0.05)
    assert got == []
    queue.add("a")
    worker.join(2)
    assert got == ["a"]


def test_a_blocked_get_wakes_when_a_delayed_key_is_due():
    queue = workqueue.WorkQueue[str]()  # real clock: the waiting thread must wake by itself
    queue.add_after("a", 0.1)
    start = time.monotonic()
    assert queue.get(timeout=5) == "a"
    assert time.monotonic() - start >= 0.09


def test_shutdown_releases_blocked_getters_and_ignores_adds():
    queue = workqueue.WorkQueue[str]()
    results = []
    workers = [threading.Thread(target=lambda: results.append(queue.get())) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(0.05)
    queue.shutdown()
    for worker in workers:
        worker.join(2)
    assert results == [None, None, None]
    queue.add("a")
    assert queue.get(timeout=0) is None
    assert queue.shutting_down


def test_metrics_count_adds_depth_waits_and_retries():
    clock = ManualClock()
    counters = workqueue.QueueCounters()
    queue = a_queue(clock, metrics=counters)
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert (counters.adds, counters.current_depth) == (2, 2)
    clock.advance(3.0)
    assert queue.get(timeout=0) == "a"
    clock.advance(2.0)
    queue.done("a")
    assert counters.current_depth == 1
    assert (counters.wait_count, counters.wait_seconds_total) == (1, 3.0)
    assert (counters.work_count, counters.work_seconds_total) == (1, 2.0)
    queue.add_rate_limited("c")
    assert counters.retries == 1


def test_many_workers_never_process_the_same_key_at_once():
    queue = workqueue.WorkQueue[int]()
    in_progress: set[int] = set()
    overlaps = []
    processed = []
    lock = threading.Lock()

    def work():
        while (key := queue.get()) is not None:
            with lock:
                if key in in_progress:
                    overlaps.append(key)
                in_progress.add(key)
            time.sleep(0.001)
            with lock:
                in_progress.discard(key)
                processed.append(key)
            queue.done(key)

    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    for round_ in range(50):
        for key in range(5):
            queue.add(key)
        if round_ % 10 == 0:
            time.sleep(0.01)
    deadline = time.monotonic() + 5
    while (len(queue) or in_progress) and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.shutdown()
    for worker in workers:
        worker.join(2)
    assert overlaps == []
    assert set(processed) == set(range(5))
    assert len(processed) < 250  # de-duplicated: far fewer reconciles than adds
