"""NodeImage spec maintenance (upstream §4.2, `doUpdateNodeImage`), as a pure function.

Given a NodeImage, its Node's labels and what is known about the jobs its tags name, decide the spec (and
labels) it should have now:

1. Labels are replaced **entirely** by the Node's (only when there is a Node: a fake NodeImage keeps its own).
2. A tag entry without `createdAt` is stamped with `now` (design §1: the schema cannot default "now", so a
   hand-written entry arrives without one; upstream's webhook would have stamped it on admission, and
   upstream drops such entries, which would silently undo `kubectl patch`).
3. Owner references to our ImagePullJobs are kept only while the job exists with the same UID; references of
   any other kind are kept. A tag whose references were all dropped is dropped; a tag that never had any
   (hand-written) is not dropped for that. Trace contexts of owners that left go with them.
4. A finished tag (the status entry with the same tag *and the same version* has a `completionTime`) is
   dropped `ttlSecondsAfterFinished` after it finished; until then its remaining time is a requeue candidate.
5. An image with no tags left is dropped, with its pull secrets and sandbox config.
6. Tags stay sorted by tag (every writer keeps that order, design §1).

Pull-secret references are all kept: upstream drops a legacy (non-`batch`) reference whose Secret is gone,
but we copy no secrets and read none (design §3), and the references are for visibility only.

Owner existence is decided by the caller (from the job informer's cache, confirmed against the apiserver when
the cache has no answer) and passed in as `owners`, so this module makes no calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from services.shared.api import constants
from services.shared.api.meta import ObjectReference
from services.shared.api.nodeimage import ImageSpec, ImageTagSpec, ImageTagStatus, NodeImage, NodeImageSpec

__all__ = ["OwnerKey", "SpecPlan", "is_job_reference", "job_references", "maintain_spec", "owner_key"]

OwnerKey = tuple[str, str, str]
"""(namespace, name, uid) of an ImagePullJob a tag entry names."""


def is_job_reference(ref: ObjectReference) -> bool:
    """An owner reference to one of our ImagePullJobs (any version of our group), the only kind we check."""
    group = ref.api_version.partition("/")[0] if "/" in ref.api_version else ""
    return ref.kind == constants.KIND_IMAGE_PULL_JOB and group == constants.GROUP


def owner_key(ref: ObjectReference) -> OwnerKey:
    """How `owners` (see `maintain_spec`) names the job a reference points at."""
    return (ref.namespace, ref.name, ref.uid)


def job_references(nodeimage: NodeImage) -> set[OwnerKey]:
    """Every ImagePullJob the NodeImage's tags name: what the caller must look up before `maintain_spec`."""
    return {
        owner_key(ref)
        for image in (nodeimage.spec.images or {}).values()
        for tag in image.tags
        for ref in tag.owner_references or ()
        if is_job_reference(ref)
    }


@dataclass(frozen=True)
class SpecPlan:
    """The outcome of spec maintenance.

    Attributes:
        labels: the labels the NodeImage should have.
        spec: the spec it should have.
        changes: one human-readable line per change, for the log; empty when nothing changes.
        requeue_after: seconds until the earliest pending TTL expiry; None when none is pending.
    """

    labels: Mapping[str, str]
    spec: NodeImageSpec
    changes: tuple[str, ...]
    requeue_after: float | None

    @property
    def changed(self) -> bool:
        """Whether the NodeImage must be written."""
        return bool(self.changes)


def maintain_spec(
    nodeimage: NodeImage,
    *,
    node_labels: Mapping[str, str] | None,
    owners: Mapping[OwnerKey, bool],
    now: datetime,
) -> SpecPlan:
    """Decide the NodeImage's labels and spec; see the module docstring for the rules.

    Args:
        nodeimage: the NodeImage as last read.
        node_labels: its Node's labels; None when there is no Node (a fake NodeImage keeps its labels).
        owners: for each key of `job_references(nodeimage)`, whether that job exists with that UID; a key
            that is missing counts as existing (when in doubt, keep).
        now: the current wall-clock time.
    """
    changes: list[str] = []
    labels = dict(nodeimage.metadata.labels or {})
    if node_labels is not None and labels != dict(node_labels):
        labels = dict(node_labels)
        changes.append("labels replaced by the Node's")
    waits: list[float] = []
    images: dict[str, ImageSpec] = {}
    for name, image in (nodeimage.spec.images or {}).items():
        statuses = _status_tags(nodeimage, name)
        kept = tuple(
            tag
            for tag in (
                _maintain_tag(
                    tag,
                    where=f"image {name} tag {tag.tag}",
                    status=statuses.get(tag.tag),
                    owners=owners,
                    now=now,
                    changes=changes,
                    waits=waits,
                )
                for tag in image.tags
            )
            if tag is not None
        )
        if not kept:
            changes.append(f"image {name}: no tags left, removed")
            continue
        ordered = tuple(sorted(kept, key=lambda t: t.tag))
        if ordered != kept:
            changes.append(f"image {name}: tags sorted")
        images[name] = image if ordered == image.tags else replace(image, tags=ordered)
    spec = nodeimage.spec if not changes else replace(nodeimage.spec, images=images or None)
    return SpecPlan(labels=labels, spec=spec, changes=tuple(changes), requeue_after=min(waits) if waits else None)


def _status_tags(nodeimage: NodeImage, image: str) -> Mapping[str, ImageTagStatus]:
    statuses = (nodeimage.status.image_statuses or {}) if nodeimage.status else {}
    entry = statuses.get(image)
    return {tag.tag: tag for tag in entry.tags} if entry else {}


def _maintain_tag(
    tag: ImageTagSpec,
    *,
    where: str,
    status: ImageTagStatus | None,
    owners: Mapping[OwnerKey, bool],
    now: datetime,
    changes: list[str],
    waits: list[float],
) -> ImageTagSpec | None:
    """The tag entry as it should be, or None when it must go; notes changes and TTL waits."""
    if tag.created_at is None:
        tag = replace(tag, created_at=now)
        changes.append(f"{where}: createdAt stamped")
    owned = _drop_gone_owners(tag, owners, where, changes)
    if owned is None:
        return None
    remaining = _ttl_remaining(owned, status, now)
    if remaining is None:
        return owned
    if remaining <= 0:
        changes.append(f"{where}: ttlSecondsAfterFinished passed, removed")
        return None
    waits.append(remaining)
    return owned


def _drop_gone_owners(
    tag: ImageTagSpec, owners: Mapping[OwnerKey, bool], where: str, changes: list[str]
) -> ImageTagSpec | None:
    refs = tag.owner_references or ()
    kept = tuple(ref for ref in refs if not is_job_reference(ref) or owners.get(owner_key(ref), True))
    if len(kept) == len(refs):
        return tag
    gone = [f"{ref.namespace}/{ref.name}" for ref in refs if ref not in kept]
    if not kept:
        changes.append(f"{where}: owners {', '.join(gone)} gone, tag removed")
        return None
    changes.append(f"{where}: owners {', '.join(gone)} gone")
    uids = {ref.uid for ref in kept}
    traces = tag.trace_contexts
    if traces is not None:
        traces = tuple(trace for trace in traces if trace.uid in uids) or None
    return replace(tag, owner_references=kept, trace_contexts=traces)


def _ttl_remaining(tag: ImageTagSpec, status: ImageTagStatus | None, now: datetime) -> float | None:
    """Seconds left until the tag's TTL expires; None when no TTL runs (no TTL, or not finished at this version)."""
    ttl = tag.pull_policy.ttl_seconds_after_finished if tag.pull_policy else None
    if ttl is None or status is None or status.version != tag.version or status.completion_time is None:
        return None
    return ttl - (now - status.completion_time).total_seconds()
