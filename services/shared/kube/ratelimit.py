"""A token bucket: allow bursts up to a size, then a steady rate. Pure: the caller passes the time.

Used to bound Kubernetes Events per involved object and in total (`eventcorrelation`), the way client-go's
event spam filter does. Passing `now` in (monotonic seconds) keeps it deterministic in tests.
"""

from __future__ import annotations


class TokenBucket:
    """Holds up to `burst` tokens, refilled at `per_second`; each allowed action takes one.

    Args:
        burst: bucket size, and the tokens it starts with.
        per_second: refill rate (1/300 means one token every five minutes).
        now: the monotonic time the bucket is created at.
    """

    def __init__(self, *, burst: int, per_second: float, now: float) -> None:
        if burst < 1 or per_second < 0:
            raise ValueError(f"need burst >= 1 and per_second >= 0, got {burst}, {per_second}")
        self.burst = burst
        self.per_second = per_second
        self._tokens = float(burst)
        self._updated = now

    def available(self, now: float) -> float:
        """Tokens in the bucket at `now` (fractional while refilling)."""
        self._refill(now)
        return self._tokens

    def take(self, now: float) -> bool:
        """Take a token if there is one; False means the action must not happen now."""
        self._refill(now)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.per_second)
        self._updated = max(self._updated, now)
