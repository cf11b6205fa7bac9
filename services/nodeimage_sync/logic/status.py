"""NodeImage status maintenance (upstream §4.4, `updateNodeImageStatus`), as a pure function.

The node's puller writes status; nodeimage_sync steps in only where the puller cannot speak for itself:

* a tag entry the node has not answered (no status entry, or one for another version) for longer than the
  response timeout (10 min, counted from `createdAt`) becomes `Failed` with "node has not responded for a long
  time": the puller is down, or the node is;
* a tag entry still unfinished `activeDeadlineSeconds` + the response timeout after `createdAt` becomes
  `Failed` with "pulling exceeds the activeDeadlineSeconds".

Each such failure is reported as a Warning event on every owner and on the NodeImage (the caller emits them,
after the write succeeded), with upstream's exact wording (`failure_event_message`).

Unlike upstream, status entries (and images) that are no longer in spec are pruned whenever they exist, so a
tag removed by its TTL leaves status too even if no puller runs; the counts are recomputed then. `waiting` is
left as the puller counted it, as upstream does (only the puller knows which pulls wait for a worker).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.shared.api.meta import ObjectReference
from services.shared.api.nodeimage import ImagePullPhase, ImageStatus, ImageTagSpec, ImageTagStatus, NodeImage

__all__ = [
    "DEADLINE_EXCEEDED_MESSAGE",
    "NOT_RESPONDING_MESSAGE",
    "Failure",
    "StatusPlan",
    "failure_event_message",
    "maintain_status",
]

NOT_RESPONDING_MESSAGE = "node has not responded for a long time"
"""Upstream's status message for a tag the node never answered within the response timeout."""

DEADLINE_EXCEEDED_MESSAGE = "pulling exceeds the activeDeadlineSeconds"
"""Upstream's status message for a tag unfinished after its deadline (plus the response timeout)."""


def failure_event_message(*, image: str, tag: str, node: str, message: str) -> str:
    """Upstream's Warning event text for a failure decided here (reason `PullImageFailed`)."""
    return f"Failed to pull image {image}:{tag} on node {node} for {message}"


@dataclass(frozen=True)
class Failure:
    """A tag entry this pass marked Failed: what the events say and whom they go to."""

    image: str
    tag: str
    message: str
    owners: tuple[ObjectReference, ...]


@dataclass(frozen=True)
class StatusPlan:
    """The outcome of status maintenance.

    Attributes:
        image_statuses: the status entries the NodeImage should have; None when the status needs no write.
        counts: `desired`, `succeeded`, `failed`, `pulling` recomputed for `image_statuses` (empty when None).
        failures: tag entries failed by this pass, for the events.
        requeue_after: seconds until the earliest pending timeout or deadline; None when none is pending.
    """

    image_statuses: Mapping[str, ImageStatus] | None
    counts: Mapping[str, int]
    failures: tuple[Failure, ...]
    requeue_after: float | None

    @property
    def changed(self) -> bool:
        """Whether the status must be written."""
        return self.image_statuses is not None


def maintain_status(nodeimage: NodeImage, *, now: datetime, response_timeout: timedelta) -> StatusPlan:
    """Decide the status entries of `nodeimage` (whose spec is already maintained); see the module docstring."""
    current = (nodeimage.status.image_statuses or {}) if nodeimage.status else {}
    updated: dict[str, dict[str, ImageTagStatus]] = {name: {t.tag: t for t in s.tags} for name, s in current.items()}
    failures: list[Failure] = []
    waits: list[float] = []
    for name, image in (nodeimage.spec.images or {}).items():
        entries = updated.setdefault(name, {})
        for tag in image.tags:
            decided = _decide_tag(tag, entries.get(tag.tag), now=now, response_timeout=response_timeout)
            if isinstance(decided, float):
                waits.append(decided)
            elif decided is not None:
                entries[tag.tag] = decided
                failures.append(Failure(name, tag.tag, decided.message, tag.owner_references or ()))
    statuses = _pruned(updated, nodeimage)
    requeue = min(waits) if waits else None
    if statuses == dict(current):
        return StatusPlan(None, {}, (), requeue)
    return StatusPlan(statuses, _counts(statuses, nodeimage), tuple(failures), requeue)


def _decide_tag(
    tag: ImageTagSpec, entry: ImageTagStatus | None, *, now: datetime, response_timeout: timedelta
) -> ImageTagStatus | float | None:
    """A Failed entry to store, seconds to wait before looking again, or None (nothing to do)."""
    if tag.created_at is None:
        return None
    age = now - tag.created_at
    if entry is None or entry.version != tag.version:
        if age < response_timeout:
            return (response_timeout - age).total_seconds()
        return ImageTagStatus(
            tag=tag.tag,
            phase=ImagePullPhase.FAILED,
            completion_time=now,
            version=tag.version,
            message=NOT_RESPONDING_MESSAGE,
        )
    deadline = tag.pull_policy.active_deadline_seconds if tag.pull_policy else None
    if entry.completion_time is not None or deadline is None:
        return None
    limit = timedelta(seconds=deadline) + response_timeout
    if age < limit:
        return (limit - age).total_seconds()
    return replace(entry, phase=ImagePullPhase.FAILED, completion_time=now, message=DEADLINE_EXCEEDED_MESSAGE)


def _pruned(entries: Mapping[str, Mapping[str, ImageTagStatus]], nodeimage: NodeImage) -> dict[str, ImageStatus]:
    """Status images and tags that are in spec, tags sorted by tag; images left without tags dropped."""
    spec = nodeimage.spec.images or {}
    pruned: dict[str, ImageStatus] = {}
    for name, tags in entries.items():
        wanted = {t.tag for t in spec[name].tags} if name in spec else set()
        kept = tuple(sorted((t for t in tags.values() if t.tag in wanted), key=lambda t: t.tag))
        if kept:
            pruned[name] = ImageStatus(tags=kept)
    return pruned


def _counts(statuses: Mapping[str, ImageStatus], nodeimage: NodeImage) -> dict[str, int]:
    phases = [t.phase for s in statuses.values() for t in s.tags]
    return {
        "desired": sum(len(image.tags) for image in (nodeimage.spec.images or {}).values()),
        "succeeded": phases.count(ImagePullPhase.SUCCEEDED),
        "failed": phases.count(ImagePullPhase.FAILED),
        "pulling": phases.count(ImagePullPhase.PULLING),
    }
