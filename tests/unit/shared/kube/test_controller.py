"""Workers: errors are retried with back-off, successes reset it, requeue_after schedules the next look."""

from __future__ import annotations

import threading
import time

import pytest

from services.shared.clock import ManualClock
from services.shared.kube import backoff, controller, errors, workqueue

pytestmark = pytest.mark.timeout(10)

EXACT = backoff.BackoffPolicy(initial=1.0, factor=2.0, cap=60.0, jitter=0.0)


def a_queue(clock: ManualClock) -> workqueue.WorkQueue[str]:
    return workqueue.WorkQueue(clock=clock, item_backoff=EXACT)


def failing(times: int, exc: Exception):
    calls = []

    def reconcile(key: str) -> controller.Result | None:
        calls.append(key)
        if len(calls) <= times:
            raise exc
        return None

    return reconcile, calls


def test_a_failing_reconcile_is_retried_after_its_back_off():
    clock = ManualClock()
    queue = a_queue(clock)
    reconcile, calls = failing(2, RuntimeError("boom"))
    queue.add("a")
    assert controller.process_next(queue, reconcile)
    assert queue.get(timeout=0) is None
    clock.advance(1.0)
    assert controller.process_next(queue, reconcile)
    clock.advance(1.0)
    assert queue.get(timeout=0) is None  # second retry waits 2 s
    clock.advance(1.0)
    assert controller.process_next(queue, reconcile)
    assert calls == ["a", "a", "a"]
    assert queue.num_requeues("a") == 0  # success forgot the failures


def test_a_conflict_is_retried_like_any_failure():
    clock = ManualClock()
    queue = a_queue(clock)
    reconcile, calls = failing(1, errors.Conflict("stale", code=409, reason="Conflict"))
    queue.add("a")
    controller.process_next(queue, reconcile)
    clock.advance(1.0)
    controller.process_next(queue, reconcile)
    assert calls == ["a", "a"]


def test_requeue_after_schedules_the_key_again():
    clock = ManualClock()
    queue = a_queue(clock)
    queue.add("a")
    controller.process_next(queue, lambda key: controller.Result(requeue_after=30.0))
    clock.advance(29.0)
    assert len(queue) == 0
    clock.advance(1.0)
    assert len(queue) == 1


def test_process_next_reports_shutdown():
    queue = a_queue(ManualClock())
    queue.shutdown()
    assert controller.process_next(queue, lambda key: None) is False


def test_controller_runs_workers_until_stopped():
    seen = []
    lock = threading.Lock()

    def reconcile(key: str) -> None:
        with lock:
            seen.append(key)

    ctl = controller.Controller("test", reconcile, workers=3)
    ctl.start()
    for key in "abcdef":
        ctl.queue.add(key)
    deadline = time.monotonic() + 5
    while len(seen) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    ctl.stop(timeout=2)
    assert sorted(seen) == list("abcdef")
    assert not [t for t in threading.enumerate() if t.name.startswith("test-worker-")]
