"""Builders for NodeImage values in the nodeimage_sync unit tests: short calls instead of long literals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.shared.api import constants
from services.shared.api.meta import ObjectMeta, ObjectReference
from services.shared.api.nodeimage import (
    ImagePullPhase,
    ImageSpec,
    ImageStatus,
    ImageTagPullPolicy,
    ImageTagSpec,
    ImageTagStatus,
    NodeImage,
    NodeImageSpec,
    NodeImageStatus,
)

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def a_job_ref(name: str = "job", uid: str | None = None, namespace: str = "ns") -> ObjectReference:
    return ObjectReference(
        api_version=constants.API_VERSION,
        kind=constants.KIND_IMAGE_PULL_JOB,
        namespace=namespace,
        name=name,
        uid=uid or f"uid-{name}",
    )


def a_tag(
    tag: str = "latest",
    *,
    created_at: datetime | None = T0,
    owners: tuple[ObjectReference, ...] | None = None,
    version: int = 0,
    ttl: int | None = None,
    deadline: int | None = None,
) -> ImageTagSpec:
    return ImageTagSpec(
        tag=tag,
        created_at=created_at,
        owner_references=owners,
        version=version,
        pull_policy=ImageTagPullPolicy(
            timeout_seconds=600, backoff_limit=3, ttl_seconds_after_finished=ttl, active_deadline_seconds=deadline
        ),
    )


def a_status(
    tag: str = "latest",
    *,
    phase: str = ImagePullPhase.SUCCEEDED,
    version: int = 0,
    completed: datetime | None = None,
    message: str = "",
) -> ImageTagStatus:
    return ImageTagStatus(tag=tag, phase=phase, version=version, completion_time=completed, message=message)


def a_nodeimage(
    name: str = "node-a",
    *,
    labels: dict[str, str] | None = None,
    images: dict[str, tuple[ImageTagSpec, ...]] | None = None,
    statuses: dict[str, tuple[ImageTagStatus, ...]] | None = None,
    waiting: int = 0,
) -> NodeImage:
    status = None
    if statuses is not None:
        status = NodeImageStatus(
            desired=sum(len(t) for t in (images or {}).values()),
            waiting=waiting,
            image_statuses={image: ImageStatus(tags=tags) for image, tags in statuses.items()},
        )
    return NodeImage(
        metadata=ObjectMeta(name=name, labels=labels),
        spec=NodeImageSpec(images={image: ImageSpec(tags=tags) for image, tags in (images or {}).items()} or None),
        status=status,
    )
