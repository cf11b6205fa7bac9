"""The pull policy a job writes into a NodeImage tag entry (upstream-behaviour.md §2.6, design §5).

The tag's `ttlSecondsAfterFinished` is what makes nodeimage_sync drop a finished tag entry, which in turn makes
the job re-add it: for `Never` jobs that is the daily re-pull (24 h ± 10 min by default), for `Always` jobs it
bounds how long a finished entry lingers (`ttl | deadline | timeoutxbackoff` plus a flag and a jitter).

Design §5 fixes upstream #2221: a tag entry's timeout and backoff follow its owning jobs (the most generous
among them), instead of staying as the first job wrote them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.shared.api import constants
from services.shared.api.imagepulljob import CompletionPolicyType, ImagePullJobSpec
from services.shared.api.nodeimage import ImageTagPullPolicy

__all__ = ["TagPolicySettings", "effective_backoff", "effective_timeout", "generous_limits", "new_tag_policy"]


@dataclass(frozen=True)
class TagPolicySettings:
    """The timers of §2.6, each a scheduler flag with upstream's default."""

    always_ttl_extra_seconds: int = 300
    """`--default-ttlseconds-for-always-nodeimage`: added to every Always tag's TTL."""
    always_ttl_jitter_seconds: int = 300
    """Always tags get `rand[0, this)` more TTL, so tags written together do not expire together."""
    never_repull_interval_seconds: int = 86400
    """Never tags expire (and are re-pulled) this long after finishing: the daily re-pull."""
    never_repull_jitter_seconds: int = 600
    """Never tags' TTL varies by ± this much."""
    never_min_deadline_seconds: int = 1800
    """A Never tag's activeDeadlineSeconds is max(this, timeoutSeconds)."""


def effective_timeout(spec: ImagePullJobSpec) -> int:
    """The job's per-attempt pull timeout, upstream's 600 s when unset."""
    value = spec.pull_policy.timeout_seconds if spec.pull_policy else None
    return constants.DEFAULT_PULL_TIMEOUT_SECONDS if value is None else value


def effective_backoff(spec: ImagePullJobSpec) -> int:
    """The job's retry count, 3 when unset or negative (as the puller reads it)."""
    value = spec.pull_policy.backoff_limit if spec.pull_policy else None
    return constants.DEFAULT_BACKOFF_LIMIT if value is None or value < 0 else value


def is_never(spec: ImagePullJobSpec) -> bool:
    """True for `completionPolicy.type: Never` jobs (they never finish)."""
    return spec.completion_policy.type == CompletionPolicyType.NEVER


def new_tag_policy(spec: ImagePullJobSpec, settings: TagPolicySettings, jitter: float) -> ImageTagPullPolicy:
    """The policy of a tag entry this job creates; `jitter` is a random sample in [0, 1)."""
    timeout = effective_timeout(spec)
    backoff = effective_backoff(spec)
    if is_never(spec):
        spread = settings.never_repull_jitter_seconds
        return ImageTagPullPolicy(
            timeout_seconds=timeout,
            backoff_limit=backoff,
            ttl_seconds_after_finished=settings.never_repull_interval_seconds + int(jitter * 2 * spread) - spread,
            active_deadline_seconds=max(settings.never_min_deadline_seconds, timeout),
        )
    completion = spec.completion_policy
    if completion.ttl_seconds_after_finished is not None:
        base = completion.ttl_seconds_after_finished
    elif completion.active_deadline_seconds is not None:
        base = completion.active_deadline_seconds
    else:
        base = timeout * backoff
    return ImageTagPullPolicy(
        timeout_seconds=timeout,
        backoff_limit=backoff,
        ttl_seconds_after_finished=base
        + settings.always_ttl_extra_seconds
        + int(jitter * settings.always_ttl_jitter_seconds),
        active_deadline_seconds=completion.active_deadline_seconds,
    )


def generous_limits(owners: Iterable[ImagePullJobSpec], floor: ImageTagPullPolicy | None = None) -> tuple[int, int]:
    """The largest timeout and backoff among the owning jobs (and `floor`, the values of owners we cannot see)."""
    timeouts = [effective_timeout(spec) for spec in owners]
    backoffs = [effective_backoff(spec) for spec in owners]
    if floor is not None:
        if floor.timeout_seconds is not None:
            timeouts.append(floor.timeout_seconds)
        if floor.backoff_limit is not None:
            backoffs.append(floor.backoff_limit)
    return (
        max(timeouts, default=constants.DEFAULT_PULL_TIMEOUT_SECONDS),
        max(backoffs, default=constants.DEFAULT_BACKOFF_LIMIT),
    )
