"""Retry and timeout arithmetic (upstream-behaviour.md §5.3)."""

from __future__ import annotations

import datetime

import pytest

from services.puller.logic import backoff

T0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        pytest.param(0, 0.0, id="no-failure-no-sleep"),
        pytest.param(1, 1.0, id="first"),
        pytest.param(2, 2.0, id="doubles"),
        pytest.param(5, 16.0, id="fifth"),
        pytest.param(6, 30.0, id="capped"),
        pytest.param(1000, 30.0, id="huge-stays-capped"),
    ],
)
def test_sleep_doubles_from_one_second_to_thirty(failures: int, expected: float) -> None:
    assert backoff.RetryPolicy().sleep_after(failures) == expected


def test_sleep_follows_the_flags() -> None:
    assert [backoff.RetryPolicy(initial=0.2, cap=1.0).sleep_after(n) for n in (1, 2, 3, 4)] == [0.2, 0.4, 0.8, 1.0]


@pytest.mark.parametrize(
    ("limit", "attempts"),
    [
        pytest.param(None, 4, id="unset-is-3"),
        pytest.param(-1, 4, id="negative-is-3"),
        pytest.param(0, 1, id="zero-one-attempt"),
        pytest.param(5, 6, id="limit-plus-one"),
    ],
)
def test_attempts_are_backoff_limit_plus_one(limit: int | None, attempts: int) -> None:
    assert backoff.attempts_for(limit) == attempts


@pytest.mark.parametrize(
    ("value", "timeout"),
    [pytest.param(None, 600, id="unset"), pytest.param(0, 600, id="zero"), pytest.param(30, 30, id="set")],
)
def test_timeout_defaults_to_600(value: int | None, timeout: int) -> None:
    assert backoff.timeout_for(value) == timeout


def test_attempt_timeout_without_deadline_is_the_timeout() -> None:
    assert backoff.attempt_timeout(timeout_seconds=600, deadline=None, now=T0) == 600.0


def test_attempt_timeout_is_capped_by_time_left_to_the_deadline() -> None:
    deadline = backoff.deadline_for(T0, 100)
    now = T0 + datetime.timedelta(seconds=70)
    assert backoff.attempt_timeout(timeout_seconds=600, deadline=deadline, now=now) == 30.0
    assert backoff.attempt_timeout(timeout_seconds=10, deadline=deadline, now=now) == 10.0


@pytest.mark.parametrize("after", [100, 101], ids=["at-deadline", "past-deadline"])
def test_no_attempt_once_the_deadline_passed(after: int) -> None:
    deadline = backoff.deadline_for(T0, 100)
    with pytest.raises(backoff.DeadlineExceeded, match="pulling exceeds the activeDeadlineSeconds"):
        backoff.attempt_timeout(timeout_seconds=600, deadline=deadline, now=T0 + datetime.timedelta(seconds=after))


def test_no_deadline_when_unset() -> None:
    assert backoff.deadline_for(T0, None) is None
