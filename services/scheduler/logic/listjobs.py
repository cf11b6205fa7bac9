"""ImageListPullJob decisions (upstream-behaviour.md §3, §1.4): one child ImagePullJob per image.

* The template hash (FNV-32a of the template's canonical JSON) labels each child; a child whose label differs
  from the current hash is deleted and created again, so a template edit reaches every image.
* Status is computed from the children before any is created or deleted; children not yet reconciled
  (`status.startTime` unset) are left out of every counter.
* Creations go out in slow-start batches (1, 2, 4, …), stopping at the first failure, so a broken template
  does not produce hundreds of failed calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.shared.api import constants
from services.shared.api.conditions import Condition, ConditionStatus, ConditionType, set_condition
from services.shared.api.imagelistpulljob import FailedImageStatus, ImageListPullJob, ImageListPullJobStatus
from services.shared.api.imagepulljob import CompletionPolicyType, ImagePullJob

__all__ = ["ChildPlan", "aggregate_status", "plan_children", "slow_start_batches", "template_hash"]

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def template_hash(job: ImageListPullJob) -> str:
    """FNV-32a of the job's ImagePullJobTemplate in canonical JSON, as 8 hex digits (a valid label value)."""
    template = job.spec.child_spec("").template().to_dict()
    value = _FNV_OFFSET
    for byte in json.dumps(template, sort_keys=True, separators=(",", ":")).encode():
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return f"{value:08x}"


@dataclass(frozen=True)
class ChildPlan:
    """What to do to the children: images to create a child for, and child names to delete."""

    create: tuple[str, ...]
    delete: tuple[str, ...]


def plan_children(images: Sequence[str], children: Sequence[ImagePullJob], current_hash: str) -> ChildPlan:
    """Create a child per image without a current one; delete children for other images or an older template."""
    wanted = set(images)
    current: set[str] = set()
    delete: list[str] = []
    for child in children:
        labels = child.metadata.labels or {}
        image = child.spec.image
        if (
            image not in wanted
            or image in current
            or labels.get(constants.LABEL_CONTROLLER_REVISION_HASH) != current_hash
        ):
            delete.append(child.metadata.name)
        else:
            current.add(image)
    create = tuple(image for image in images if image not in current)
    return ChildPlan(create=create, delete=tuple(sorted(delete)))


def slow_start_batches(count: int) -> Iterator[int]:
    """Batch sizes 1, 2, 4, … adding up to `count`."""
    size = 1
    remaining = count
    while remaining > 0:
        batch = min(size, remaining)
        yield batch
        remaining -= batch
        size *= 2


def aggregate_status(
    job: ImageListPullJob, children: Mapping[str, ImagePullJob], now: datetime
) -> ImageListPullJobStatus:
    """The list job's status from its children (by image), per upstream §1.4, plus conditions."""
    previous = job.status
    active = completed = succeeded = 0
    failed: list[FailedImageStatus] = []
    for image in job.spec.images:
        child = children.get(image)
        status = child.status if child else None
        if child is None or status is None or status.start_time is None:
            continue
        active += status.active > 0
        completed += status.desired == status.succeeded + status.failed
        succeeded += status.desired == status.succeeded
        if status.failed > 0:
            name = child.metadata.name
            failed.append(
                FailedImageStatus(
                    image_pull_job=name,
                    name=image,
                    message=f"Please check for details which nodes failed by 'kubectl get ImagePullJob {name}'.",
                )
            )
    desired = len(job.spec.images)
    never = job.spec.completion_policy.type == CompletionPolicyType.NEVER
    finished = not never and completed == desired
    completion_time = (previous.completion_time if previous else None) or (now if finished else None)
    condition_status = ConditionStatus.TRUE if finished else ConditionStatus.FALSE
    complete = Condition(
        type=ConditionType.COMPLETE,
        status=condition_status,
        last_transition_time=now,
        reason="AllImagesFinished" if finished else "Pulling",
        message=f"{completed} of {desired} image(s) finished",
        observed_generation=job.metadata.generation,
    )
    return ImageListPullJobStatus(
        start_time=(previous.start_time if previous else None) or now,
        completion_time=completion_time,
        desired=desired,
        active=active,
        completed=completed,
        succeeded=succeeded,
        failed_image_statuses=tuple(failed) or None,
        observed_generation=job.metadata.generation,
        conditions=set_condition(previous.conditions if previous else None, complete),
        extra=previous.extra if previous else {},
    )
