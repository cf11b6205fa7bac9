"""Small builders of API objects for the scheduler's unit tests (JSON in, typed objects out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.shared.api.imagepulljob import ImagePullJob
from services.shared.api.nodeimage import NodeImage

T0 = datetime(2026, 1, 1, tzinfo=UTC)
JOB_UID = "uid-job"


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def job(
    *,
    image: str = "nginx:1.25",
    uid: str = JOB_UID,
    status: dict[str, Any] | None = None,
    generation: int = 1,
    **spec: Any,
) -> ImagePullJob:
    """An ImagePullJob in namespace `ns` named `j`."""
    body: dict[str, Any] = {
        "metadata": {"name": "j", "namespace": "ns", "uid": uid, "generation": generation},
        "spec": {"image": image, "completionPolicy": {}, **spec},
    }
    if status is not None:
        body["status"] = status
    return ImagePullJob.from_dict(body)


def tag_entry(
    tag: str = "1.25", *, version: int = 0, owners: tuple[str, ...] = (JOB_UID,), **extra: Any
) -> dict[str, Any]:
    """One tag entry owned by the given UIDs."""
    return {
        "tag": tag,
        "version": version,
        "ownerReferences": [{"kind": "ImagePullJob", "name": f"job-{u}", "namespace": "ns", "uid": u} for u in owners],
        **extra,
    }


def tag_status(tag: str = "1.25", phase: str = "Succeeded", *, version: int = 0, message: str = "") -> dict[str, Any]:
    """One status entry."""
    return {"tag": tag, "phase": phase, "version": version, "message": message}


def node(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    tags: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    image: str = "nginx",
    pull_secrets: list[dict[str, str]] | None = None,
) -> NodeImage:
    """A NodeImage with optional tag entries and status entries for one image."""
    body: dict[str, Any] = {"metadata": {"name": name, "labels": labels or {}}, "spec": {}}
    if tags is not None:
        image_spec: dict[str, Any] = {"tags": tags}
        if pull_secrets is not None:
            image_spec["pullSecrets"] = pull_secrets
        body["spec"] = {"images": {image: image_spec}}
    if statuses is not None:
        body["status"] = {"desired": len(tags or []), "imageStatuses": {image: {"tags": statuses}}}
    return NodeImage.from_dict(body)
