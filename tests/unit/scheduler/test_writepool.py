"""Tag-entry writes side by side: all tasks run, overlapping up to the cap over all callers, in the caller's context."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable

import pytest

from services.scheduler import settings
from services.scheduler.writepool import WritePool
from services.shared.settings import SettingsError

WAIT = 30.0
"""Seconds a task may wait for its peers before the test fails (generous: the machine is shared)."""


class InFlight:
    """Counts tasks running at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self.now -= 1


def test_tasks_overlap_up_to_the_limit() -> None:
    pool = WritePool(3)
    together = threading.Barrier(3, timeout=WAIT)
    flight = InFlight()
    done: list[int] = []

    def task(number: int) -> Callable[[], None]:
        def run() -> None:
            with flight:
                together.wait()  # only returns when three tasks run at once
                done.append(number)

        return run

    pool.run_all([task(n) for n in range(6)])
    assert sorted(done) == list(range(6))
    assert flight.peak == 3


def test_the_limit_holds_over_concurrent_callers() -> None:
    pool = WritePool(2)
    flight = InFlight()
    release = threading.Event()

    def task() -> None:
        with flight:
            release.wait(0.05)

    callers = [threading.Thread(target=pool.run_all, args=([task] * 5,)) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(WAIT)
    assert flight.peak == 2


def test_a_failure_lets_the_other_writes_finish_then_raises_the_first() -> None:
    pool = WritePool(4)
    done: list[str] = []

    def ok(name: str) -> Callable[[], None]:
        return lambda: done.append(name)

    def fail(message: str) -> Callable[[], None]:
        def run() -> None:
            raise RuntimeError(message)

        return run

    with pytest.raises(RuntimeError, match="first"):
        pool.run_all([ok("a"), fail("first"), ok("b"), fail("second"), ok("c")])
    assert sorted(done) == ["a", "b", "c"]


def test_tasks_run_in_the_callers_context() -> None:
    current = contextvars.ContextVar("current", default="none")
    current.set("reconcile span")
    seen: list[str] = []
    lock = threading.Lock()

    def task() -> None:
        with lock:
            seen.append(current.get())

    WritePool(4).run_all([task] * 8)
    assert seen == ["reconcile span"] * 8


def test_a_limit_of_one_writes_one_after_another_in_the_callers_thread() -> None:
    threads: list[str] = []
    WritePool(1).run_all([lambda: threads.append(threading.current_thread().name)] * 3)
    assert threads == [threading.current_thread().name] * 3


def test_the_flag_sets_the_limit_and_refuses_zero() -> None:
    assert settings.parse([], environ={}).nodeimage_write_workers == 16
    assert settings.parse(["--nodeimage-write-workers", "4"], environ={}).nodeimage_write_workers == 4
    with pytest.raises(SettingsError, match="--nodeimage-write-workers must be at least 1"):
        settings.parse(["--nodeimage-write-workers", "0"], environ={})
