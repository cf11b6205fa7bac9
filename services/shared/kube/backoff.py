"""Exponential back-off: how long to wait before the next attempt after consecutive failures.

Shared by the informer (reconnecting a watch), the work queue (per-key retry of a failing reconcile) and
leader election. The policy is pure (attempt number and a random source in, seconds out), so tests check the
numbers without sleeping; `Backoff` only counts consecutive failures. Jitter spreads the retries of many
clients that failed together, e.g. every puller when the apiserver restarts, so they do not return in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_EXPONENT = 64
"""Attempts beyond this are not distinguished; keeps `factor ** attempt` finite."""


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay = min(cap, initial * factor ** attempt), then stretched by up to `jitter` (a fraction) at random.

    Attributes:
        initial: seconds before the first retry.
        factor: growth per consecutive failure.
        cap: the longest wait, in seconds, before jitter.
        jitter: 0.2 means up to 20 % longer, chosen at random; 0 for exact delays.
    """

    initial: float = 0.8
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < 0 or self.factor < 1 or self.jitter < 0:
            raise ValueError(f"invalid back-off policy: {self}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0 for the first retry)."""
        base = min(self.cap, self.initial * self.factor ** min(max(attempt, 0), MAX_EXPONENT))
        if self.jitter and rng is not None:
            base *= 1.0 + self.jitter * rng.random()
        return base


class Backoff:
    """Consecutive-failure counter over a `BackoffPolicy`; not thread-safe (one per retrying loop)."""

    def __init__(self, policy: BackoffPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng or random.Random()
        self.failures = 0

    def next(self) -> float:
        """Record one more failure and return how long to wait before retrying."""
        delay = self.policy.delay(self.failures, self._rng)
        self.failures += 1
        return delay

    def reset(self) -> None:
        """Forget past failures: the next failure waits `initial` again."""
        self.failures = 0
