"""Which tags need a worker, and the status to write: the puller's sync, as pure functions (upstream §5.2).

`plan_sync` compares the NodeImage (spec and the status as stored) with the workers the puller has:

* A tag whose stored status has the spec's version and a completion time is *done*: its status is adopted as
  known (so a Failed written by nodeimage_sync on a timeout is respected) and any worker for it stops.
* Every other tag is *active* and needs a worker for its version. A worker for another version, or for a tag
  that is no longer active or no longer in the spec, is stopped: that is how a version bump restarts a pull
  and how a removed tag cancels one.
* After a restart there are no workers, so every tag that was Waiting or Pulling gets a new one: the puller
  never reports a pull it did not see finish.

`build_status` makes the status from scratch, as upstream does: `desired` counts the spec's tags, and each tag
with a known status of the spec's version is listed (sorted by tag) and counted by phase. A final status
stored by someone else wins over our non-final one for the same version, so a racing timeout is not undone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from services.puller.logic import tagstate
from services.puller.logic.tagstate import TagKey
from services.shared.api import nodeimage

__all__ = ["SyncPlan", "build_status", "is_still_pulling", "plan_sync", "spec_tags", "stored_statuses"]

Phase = nodeimage.ImagePullPhase


@dataclass(frozen=True)
class SyncPlan:
    """What a sync changes: workers to stop and start, statuses to adopt, and known statuses to forget."""

    stop: tuple[TagKey, ...] = ()
    start: tuple[tagstate.PullTask, ...] = ()
    adopt: Mapping[TagKey, nodeimage.ImageTagStatus] = field(default_factory=dict)
    forget: tuple[TagKey, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing to do."""
        return not (self.stop or self.start or self.adopt or self.forget)


def spec_tags(spec: nodeimage.NodeImageSpec) -> Iterator[tuple[TagKey, nodeimage.ImageSpec, nodeimage.ImageTagSpec]]:
    """Every tag entry of the spec, by image name and then tag (the order statuses are written in)."""
    images = spec.images or {}
    for name in sorted(images):
        image = images[name]
        for tag in sorted(image.tags, key=lambda t: t.tag):
            yield TagKey(name, tag.tag), image, tag


def stored_statuses(status: nodeimage.NodeImageStatus | None) -> dict[TagKey, nodeimage.ImageTagStatus]:
    """The per-tag statuses of a stored NodeImage status, keyed by tag entry."""
    if status is None or not status.image_statuses:
        return {}
    return {TagKey(name, entry.tag): entry for name, image in status.image_statuses.items() for entry in image.tags}


def plan_sync(
    node_image: nodeimage.NodeImage,
    *,
    workers: Mapping[TagKey, int],
    known: Mapping[TagKey, nodeimage.ImageTagStatus],
) -> SyncPlan:
    """Decide which workers to stop and start for `node_image`.

    Args:
        node_image: the object as last seen.
        workers: the version each existing worker pulls, by tag (finished workers included: a worker stays
            until its tag is done, so a finished pull is not started again before its status is stored).
        known: the statuses the puller holds, by tag.

    Returns:
        The plan; applying it leaves exactly one worker per active tag, at the spec's version.
    """
    stored = stored_statuses(node_image.status)
    active: dict[TagKey, tagstate.PullTask] = {}
    adopt: dict[TagKey, nodeimage.ImageTagStatus] = {}
    for key, image, tag in spec_tags(node_image.spec):
        entry = stored.get(key)
        if entry is not None and entry.version == tag.version and tagstate.is_final(entry):
            if known.get(key) != entry:
                adopt[key] = entry
        else:
            active[key] = tagstate.task_for(key, image, tag)
    stop = tuple(key for key, version in workers.items() if key not in active or active[key].version != version)
    start = tuple(task for key, task in active.items() if key not in workers or key in stop)
    in_spec = {key for key, _, _ in spec_tags(node_image.spec)}
    forget = tuple(key for key in known if key not in in_spec)
    return SyncPlan(stop=stop, start=start, adopt=adopt, forget=forget)


def build_status(
    node_image: nodeimage.NodeImage,
    known: Mapping[TagKey, nodeimage.ImageTagStatus],
    *,
    observed_generation: int = 0,
) -> nodeimage.NodeImageStatus:
    """The status to store for `node_image` given what the puller knows (see the module docstring).

    Fields nobody here owns (`firstSyncStatus`, unmodelled keys) are kept from the stored status.
    """
    stored = stored_statuses(node_image.status)
    by_image: dict[str, list[nodeimage.ImageTagStatus]] = {}
    counts = dict.fromkeys(Phase, 0)
    desired = 0
    for key, _, tag in spec_tags(node_image.spec):
        desired += 1
        entry = _entry_for(known.get(key), stored.get(key), tag.version)
        if entry is None:
            continue
        by_image.setdefault(key.image, []).append(entry)
        if entry.phase in counts:
            counts[Phase(entry.phase)] += 1
    previous = node_image.status
    return nodeimage.NodeImageStatus(
        desired=desired,
        succeeded=counts[Phase.SUCCEEDED],
        failed=counts[Phase.FAILED],
        pulling=counts[Phase.PULLING],
        waiting=counts[Phase.WAITING],
        image_statuses={name: nodeimage.ImageStatus(tags=tuple(tags)) for name, tags in by_image.items()} or None,
        first_sync_status=previous.first_sync_status if previous else None,
        observed_generation=observed_generation or (previous.observed_generation if previous else 0),
        extra=previous.extra if previous else {},
    )


def _entry_for(
    ours: nodeimage.ImageTagStatus | None, theirs: nodeimage.ImageTagStatus | None, version: int
) -> nodeimage.ImageTagStatus | None:
    """Our status of this version, unless the stored one of this version is final and ours is not."""
    theirs_final = theirs is not None and theirs.version == version and tagstate.is_final(theirs)
    ours_final = ours is not None and ours.version == version and tagstate.is_final(ours)
    if theirs_final and not ours_final:
        return theirs
    if ours is not None and ours.version == version:
        return ours
    return None


def is_still_pulling(status: nodeimage.NodeImageStatus, node_image: nodeimage.NodeImage) -> bool:
    """Upstream's "still pulling": not every tag is final at the spec's version (the sync requeues sooner)."""
    if status.succeeded + status.failed < status.desired:
        return True
    versions = {key: tag.version for key, _, tag in spec_tags(node_image.spec)}
    return any(versions.get(key, entry.version) != entry.version for key, entry in stored_statuses(status).items())
