"""Back-off grows exponentially to a cap; jitter only ever lengthens it, by at most the given fraction."""

from __future__ import annotations

import random

import pytest

from services.shared.kube import backoff


def test_delays_double_up_to_the_cap():
    policy = backoff.BackoffPolicy(initial=0.5, factor=2.0, cap=3.0, jitter=0.0)
    assert [policy.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_huge_attempt_numbers_stay_finite():
    assert backoff.BackoffPolicy(cap=30.0, jitter=0.0).delay(10_000) == 30.0


def test_jitter_stretches_within_bounds():
    policy = backoff.BackoffPolicy(initial=1.0, factor=1.0, cap=1.0, jitter=0.5)
    delays = [policy.delay(0, random.Random(seed)) for seed in range(50)]
    assert all(1.0 <= d <= 1.5 for d in delays)
    assert len(set(delays)) > 1


def test_backoff_counts_failures_and_resets():
    counter = backoff.Backoff(backoff.BackoffPolicy(initial=1.0, factor=2.0, cap=10.0, jitter=0.0))
    assert [counter.next(), counter.next(), counter.next()] == [1.0, 2.0, 4.0]
    counter.reset()
    assert counter.next() == 1.0


def test_invalid_policies_are_refused():
    with pytest.raises(ValueError, match="invalid"):
        backoff.BackoffPolicy(factor=0.5)
