"""Writing changes safely when others write the same object: merge patches, preconditions, conflict retry.

Several writers share our objects (the scheduler and every puller write the same NodeImage; users edit
jobs). A write based on a stale read must not silently undo someone else's: so we patch with the
resourceVersion we read as a precondition, and on 409 Conflict start over from a fresh read, re-decide
against it, and write again, a bounded number of times (client-go's `RetryOnConflict`, kruise's
`updateNodeImage`). The decision in the middle is a pure function of the object just read, so retrying is
always safe.

`merge_patch(old, new)` turns "the object as I want it" into the minimal RFC 7386 merge patch, so callers
state outcomes and the patch carries only what changed (lists are replaced whole, as merge patch requires).
`write(api, resource, current, patch)` is the one way to apply such a patch: status through the status
subresource, never both in one call, always guarded by `current`'s resourceVersion.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from services.shared.kube import backoff, errors, objects
from services.shared.kube.resources import Resource

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")

DEFAULT_ATTEMPTS = 5
"""client-go's `DefaultRetry` makes 5 attempts too; contention beyond that means something is wrong."""

CONFLICT_BACKOFF = backoff.BackoffPolicy(initial=0.01, factor=2.0, cap=0.5, jitter=1.0)
"""A short, jittered pause between attempts, so two writers that conflicted do not collide again in step."""

_MISSING = object()


def retry_on_conflict(
    read: Callable[[], T],
    decide: Callable[[T], P | None],
    write: Callable[[T, P], R],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    policy: backoff.BackoffPolicy = CONFLICT_BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> R | None:
    """Read, decide, write; on `errors.Conflict` do all three again, up to `attempts` times.

    Args:
        read: fetch the current object (from the apiserver, not a cache that may lag behind).
        decide: pure: what to write given that object, or None if nothing needs writing.
        write: apply the decision to that object; must raise `errors.Conflict` when it is stale (e.g. by
            patching with its resourceVersion as precondition, as `write()` below does).
        attempts: total tries before giving up.
        policy: pause between tries.
        sleep: injectable for tests.
        rng: jitter source.

    Returns:
        What `write` returned, or None when `decide` found nothing to do.

    Raises:
        errors.Conflict: still conflicting after `attempts` tries.
        errors.KubeError: any other failure of `read` or `write`, at once.
    """
    random_source = rng or random.Random()
    for attempt in range(attempts):
        current = read()
        decision = decide(current)
        if decision is None:
            return None
        try:
            return write(current, decision)
        except errors.Conflict:
            if attempt + 1 >= attempts:
                raise
            logger.debug("write conflicted (attempt %d of %d); re-reading", attempt + 1, attempts)
            sleep(policy.delay(attempt, random_source))
    raise ValueError(f"attempts must be at least 1, got {attempts}")


def write(
    api: objects.ObjectApi,
    resource: Resource,
    current: Mapping[str, Any],
    patch: Mapping[str, Any],
    *,
    status: bool = False,
) -> objects.RawObject:
    """Merge-patch `current` (its spec/metadata, or with `status` its status subresource), if unchanged.

    Raises:
        errors.Conflict: `current` is no longer the stored version.
        errors.NotFound: the object is gone.
    """
    metadata = current.get("metadata") or {}
    return write_at(
        api,
        resource,
        str(metadata["name"]),
        patch,
        namespace=metadata.get("namespace"),
        resource_version=str(metadata.get("resourceVersion") or ""),
        status=status,
    )


def write_at(
    api: objects.ObjectApi,
    resource: Resource,
    name: str,
    patch: Mapping[str, Any],
    *,
    namespace: str | None = None,
    resource_version: str,
    status: bool = False,
) -> objects.RawObject:
    """`write` for a caller holding the object's name and resourceVersion rather than its dict (a typed cache).

    Raises:
        errors.Conflict: `resource_version` is no longer the stored version.
        errors.NotFound: the object is gone.
    """
    apply = api.patch_status if status else api.patch
    return apply(resource, name, patch, namespace=namespace, resource_version=resource_version or None)


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns `old` into `new`; {} when they are equal.

    Keys missing from `new` become null (delete); nested objects are diffed recursively; anything else
    that differs (including lists) is replaced whole.
    """
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif before is _MISSING or before != value:
            patch[key] = copy.deepcopy(value)
    return patch
