"""One tag's pull on this node: what to pull (`PullTask`) and its status as it moves through the phases.

A tag entry of the NodeImage spec becomes a `PullTask` when it needs a worker. The worker reports each
phase with the functions below, which build the `ImageTagStatus` upstream writes (§1.5, §5.3):

    Waiting (version, no startTime) → Pulling (startTime) → Succeeded | Failed (completionTime)

`Succeeded` carries `imageID` (`<image name>@<runtime image id>`) and progress 100; `Failed` carries the
last error as `message`. A status is final once it has a completion time.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import NamedTuple

from services.puller.logic import backoff
from services.shared.api import imageref, nodeimage
from services.shared.api.meta import ObjectReference
from services.shared.api.pulloptions import ImagePullPolicy, SandboxConfig

__all__ = [
    "PullTask",
    "TagKey",
    "failed",
    "is_final",
    "pulling",
    "succeeded",
    "task_for",
    "waiting",
    "with_progress",
]

Phase = nodeimage.ImagePullPhase
COMPLETE_PERCENT = 100


class TagKey(NamedTuple):
    """A tag entry's identity in a NodeImage: the `spec.images` key and the tag (or `sha256:` digest)."""

    image: str
    tag: str

    def __str__(self) -> str:
        """`name:tag`, or `name@sha256:…` for a digest, as people read it."""
        return f"{self.image}@{self.tag}" if ":" in self.tag else f"{self.image}:{self.tag}"


@dataclass(frozen=True, kw_only=True)
class PullTask:
    """Everything a worker needs to pull one tag entry at one version.

    Attributes:
        key: the tag entry.
        version: the spec version this pull answers.
        reference: what CRI `PullImage` gets (`docker.io/library/nginx:1.25`, `reg:5000/app@sha256:…`); empty
            when the entry is not a valid image reference, and then `invalid_reason` says why.
        always_pull: True unless `imagePullPolicy` is exactly `IfNotPresent` (upstream §2.12).
        timeout_seconds: one attempt's timeout.
        attempts: `backoffLimit + 1`.
        active_deadline_seconds: counted from the start of pulling; None for no deadline.
        sandbox_config: labels and annotations for the CRI call.
        owners: the jobs owning the tag (their events get `PullImageFailed` too).
        has_pull_secrets: the image names pull secrets, so credentials must be fetched before pulling.
    """

    key: TagKey
    version: int
    reference: str
    invalid_reason: str = ""
    always_pull: bool = True
    timeout_seconds: int = 600
    attempts: int = 4
    active_deadline_seconds: int | None = None
    sandbox_config: SandboxConfig | None = None
    owners: tuple[ObjectReference, ...] = ()
    has_pull_secrets: bool = False
    traceparents: tuple[str, ...] = ()
    """W3C trace contexts of the owning jobs, oldest first; the task span continues the last (design §4)."""


def task_for(key: TagKey, image: nodeimage.ImageSpec, tag: nodeimage.ImageTagSpec) -> PullTask:
    """The pull a tag entry asks for, with upstream's defaults for unset policy fields."""
    try:
        reference, invalid = imageref.from_nodeimage_entry(key.image, key.tag).pullable(), ""
    except imageref.InvalidImageReference as error:
        reference, invalid = "", str(error)
    policy = tag.pull_policy or nodeimage.ImageTagPullPolicy()
    return PullTask(
        key=key,
        version=tag.version,
        reference=reference,
        invalid_reason=invalid,
        always_pull=tag.image_pull_policy != ImagePullPolicy.IF_NOT_PRESENT,
        timeout_seconds=backoff.timeout_for(policy.timeout_seconds),
        attempts=backoff.attempts_for(policy.backoff_limit),
        active_deadline_seconds=policy.active_deadline_seconds,
        sandbox_config=image.sandbox_config,
        owners=tag.owner_references or (),
        has_pull_secrets=bool(image.pull_secrets),
        traceparents=tuple(context.traceparent for context in tag.trace_contexts or () if context.traceparent),
    )


def waiting(key: TagKey, version: int) -> nodeimage.ImageTagStatus:
    """Recorded as soon as a worker exists: queued for a pull slot, not started (no startTime)."""
    return nodeimage.ImageTagStatus(tag=key.tag, phase=Phase.WAITING, version=version)


def pulling(key: TagKey, version: int, start: datetime.datetime) -> nodeimage.ImageTagStatus:
    """Recorded when the first attempt starts; written at once so big images do not look unresponsive."""
    return nodeimage.ImageTagStatus(tag=key.tag, phase=Phase.PULLING, version=version, start_time=start)


def with_progress(status: nodeimage.ImageTagStatus, *, done: int, total: int) -> nodeimage.ImageTagStatus:
    """A Pulling status with byte progress; `progress` is the whole percentage (0 while the total is unknown)."""
    percent = min(99, done * 100 // total) if total > 0 else 0
    return dataclasses.replace(status, progress=percent, pulled_bytes=done, total_bytes=total or None)


def succeeded(
    pulling_status: nodeimage.ImageTagStatus, *, image_name: str, runtime_id: str, now: datetime.datetime
) -> nodeimage.ImageTagStatus:
    """Final: progress 100, completion time, and `imageID` `<name>@<runtime id>` when the runtime gave one."""
    return dataclasses.replace(
        pulling_status,
        phase=Phase.SUCCEEDED,
        progress=COMPLETE_PERCENT,
        completion_time=now,
        image_id=f"{image_name}@{runtime_id}" if runtime_id else "",
        message="",
        pulled_bytes=pulling_status.total_bytes if pulling_status.total_bytes else None,
    )


def failed(
    pulling_status: nodeimage.ImageTagStatus, *, message: str, now: datetime.datetime
) -> nodeimage.ImageTagStatus:
    """Final: completion time and the reason; never an empty message (design §5)."""
    return dataclasses.replace(
        pulling_status,
        phase=Phase.FAILED,
        completion_time=now,
        message=message or "pull failed for an unknown reason",
    )


def is_final(status: nodeimage.ImageTagStatus) -> bool:
    """Whether a status ends its version's round: it has a completion time (upstream's test for "done")."""
    return status.completion_time is not None
