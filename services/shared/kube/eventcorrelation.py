"""Deciding what an event costs the apiserver: a new Event, a count update, or nothing. Pure logic.

At thousands of nodes, naive event recording would write an Event per pull per node per retry. Two rules,
after client-go's `EventCorrelator`, keep the volume bounded:

- **Aggregation.** The same (involved object, type, reason, message) seen again updates the `count` and
  `lastTimestamp` of the Event already written, instead of creating another object. The cache of written
  Events is an LRU of bounded size.
- **Rate limits.** Each involved object has a token bucket (client-go: burst 25, then one per 5 minutes),
  and all events together share one more. Over the limit, the event is dropped and counted; a dropped
  repeat still raises the local count, so the next update that gets through writes the true total.

`EventCorrelator` is fed occurrences and the monotonic time, and answers with a `Decision`; `events`
carries decisions out. It is not thread-safe: the recorder's single writer thread owns it.
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass
from typing import TypeVar

from services.shared.kube import ratelimit

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


@dataclass(frozen=True)
class ObjectRef:
    """The involved object of an Event (core/v1 ObjectReference, without resourceVersion)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Occurrence:
    """One thing that happened to an object; equal occurrences aggregate into one Event."""

    involved: ObjectRef
    type: str
    reason: str
    message: str


class Action(enum.Enum):
    """What to do with an occurrence."""

    CREATE = "create"
    UPDATE = "update"
    DROP = "drop"


@dataclass(frozen=True)
class Decision:
    """The correlator's answer: for UPDATE, the Event's `name` and the `count` to write."""

    action: Action
    name: str = ""
    count: int = 1


@dataclass(frozen=True)
class EventLimits:
    """Bounds on event writes; per-object numbers are client-go's spam-filter defaults."""

    burst_per_object: int = 25
    """Writes an object may have in a burst."""

    refill_per_object: float = 1 / 300
    """Then one write per 5 minutes per object."""

    burst_total: int = 100
    """Writes all objects together may have in a burst."""

    refill_total: float = 10.0
    """Then this many per second in total."""

    cache_size: int = 16384
    """Aggregated Events and per-object buckets remembered, least recently used forgotten first. A forgotten
    bucket starts full again, so keep this above the number of objects that get events (Nodes, jobs); the
    total bucket bounds the volume either way."""


@dataclass
class _Aggregate:
    name: str
    count: int


class EventCorrelator:
    """Aggregates repeats and applies the rate limits; see the module docstring."""

    def __init__(self, limits: EventLimits, *, now: float) -> None:
        self._limits = limits
        self._total = ratelimit.TokenBucket(burst=limits.burst_total, per_second=limits.refill_total, now=now)
        self._buckets: collections.OrderedDict[ObjectRef, ratelimit.TokenBucket] = collections.OrderedDict()
        self._written: collections.OrderedDict[Occurrence, _Aggregate] = collections.OrderedDict()

    def observe(self, occurrence: Occurrence, now: float) -> Decision:
        """Decide about one occurrence at monotonic time `now`.

        A CREATE must be followed by `created()` once the Event exists, so repeats can aggregate into it.
        """
        aggregate = self._written.get(occurrence)
        if aggregate is not None:
            self._written.move_to_end(occurrence)
            aggregate.count += 1
        if not self._allow(occurrence.involved, now):
            return Decision(Action.DROP)
        if aggregate is None:
            return Decision(Action.CREATE)
        return Decision(Action.UPDATE, name=aggregate.name, count=aggregate.count)

    def created(self, occurrence: Occurrence, name: str, *, count: int = 1) -> None:
        """Remember that `occurrence` now lives in the Event called `name`, with `count`."""
        self._written[occurrence] = _Aggregate(name=name, count=count)
        self._written.move_to_end(occurrence)
        _trim(self._written, self._limits.cache_size)

    def forget(self, occurrence: Occurrence) -> None:
        """Drop the aggregate (e.g. its Event expired on the server), so the next repeat creates anew."""
        self._written.pop(occurrence, None)

    def _allow(self, involved: ObjectRef, now: float) -> bool:
        bucket = self._buckets.get(involved)
        if bucket is None:
            bucket = ratelimit.TokenBucket(
                burst=self._limits.burst_per_object, per_second=self._limits.refill_per_object, now=now
            )
            self._buckets[involved] = bucket
            _trim(self._buckets, self._limits.cache_size)
        self._buckets.move_to_end(involved)
        return bucket.available(now) >= 1 and self._total.take(now) and bucket.take(now)


def _trim(cache: collections.OrderedDict[_Key, _Value], size: int) -> None:
    while len(cache) > size:
        cache.popitem(last=False)
