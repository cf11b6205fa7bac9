"""What a puller and a user would do, done by the tests directly against the apiserver."""

from __future__ import annotations

import contextlib
from typing import Any

from localcluster.process import wait_until
from services.shared.api import constants
from services.shared.kube import errors, objects, patching, resources

TIMEOUT = 60.0


def create_node_image(kube: objects.ObjectApi, name: str, labels: dict[str, str]) -> None:
    """An empty NodeImage, as nodeimage_sync would create it for a Node."""
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND_NODE_IMAGE,
        "metadata": {"name": name, "labels": labels},
        "spec": {},
    }
    kube.create(resources.NODE_IMAGES, body)


def create_job(kube: objects.ObjectApi, namespace: str, name: str, spec: dict[str, Any]) -> objects.RawObject:
    """Create an ImagePullJob; `completionPolicy` defaults to `{}` as a manifest would leave it to the schema."""
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND_IMAGE_PULL_JOB,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"completionPolicy": {}, **spec},
    }
    return kube.create(resources.IMAGE_PULL_JOBS, body, namespace=namespace)


def get_job(kube: objects.ObjectApi, namespace: str, name: str) -> objects.RawObject:
    """The job as stored."""
    return kube.get(resources.IMAGE_PULL_JOBS, name, namespace=namespace)


def job_status(kube: objects.ObjectApi, namespace: str, name: str) -> dict[str, Any]:
    """The job's status ({} until written)."""
    return dict(get_job(kube, namespace, name).get("status") or {})


def tag_entry(kube: objects.ObjectApi, node: str, image: str, tag: str) -> dict[str, Any] | None:
    """The tag entry for (image, tag) in a NodeImage's spec, or None."""
    raw = kube.get(resources.NODE_IMAGES, node)
    spec = ((raw.get("spec") or {}).get("images") or {}).get(image) or {}
    return next((t for t in spec.get("tags") or () if t.get("tag") == tag), None)


def status_entry(kube: objects.ObjectApi, node: str, image: str, tag: str) -> dict[str, Any] | None:
    """The status entry for (image, tag), or None."""
    raw = kube.get(resources.NODE_IMAGES, node)
    statuses = ((raw.get("status") or {}).get("imageStatuses") or {}).get(image) or {}
    return next((t for t in statuses.get("tags") or () if t.get("tag") == tag), None)


def is_active(kube: objects.ObjectApi, node: str, image: str, tag: str) -> bool:
    """True when the node has a tag entry whose current version has no final status (what `active` counts)."""
    entry = tag_entry(kube, node, image, tag)
    if entry is None:
        return False
    status = status_entry(kube, node, image, tag)
    return not (
        status is not None
        and status.get("version", 0) == entry.get("version", 0)
        and status.get("phase") in ("Succeeded", "Failed")
    )


def report(kube: objects.ObjectApi, node: str, image: str, tag: str, phase: str, message: str = "") -> None:
    """Write a status entry for the current version of the tag entry, as the node's puller would."""

    def read() -> objects.RawObject:
        return kube.get(resources.NODE_IMAGES, node)

    def decide(raw: objects.RawObject) -> dict[str, Any]:
        spec = ((raw.get("spec") or {}).get("images") or {}).get(image) or {}
        entry = next(t for t in spec.get("tags") or () if t.get("tag") == tag)
        status = dict(raw.get("status") or {"desired": 0})
        images = dict(status.get("imageStatuses") or {})
        tags = [t for t in (images.get(image) or {}).get("tags") or () if t.get("tag") != tag]
        new = {"tag": tag, "phase": phase, "version": entry.get("version", 0)}
        if message:
            new["message"] = message
        if phase in ("Succeeded", "Failed"):
            new["completionTime"] = "2026-01-01T00:00:00Z"
        tags.append(new)
        images[image] = {"tags": sorted(tags, key=lambda t: str(t["tag"]))}
        desired = sum(len(s.get("tags") or ()) for s in ((raw.get("spec") or {}).get("images") or {}).values())
        return {"status": {"desired": desired, "imageStatuses": images}}

    def write(raw: objects.RawObject, patch: dict[str, Any]) -> objects.RawObject:
        return patching.write(kube, resources.NODE_IMAGES, raw, patch, status=True)

    patching.retry_on_conflict(read, decide, write)


def remove_tag_entry(kube: objects.ObjectApi, node: str, image: str, tag: str) -> None:
    """Drop a tag entry as nodeimage_sync does when its TTL expires."""
    raw = kube.get(resources.NODE_IMAGES, node)
    spec = ((raw.get("spec") or {}).get("images") or {}).get(image) or {}
    tags = [t for t in spec.get("tags") or () if t.get("tag") != tag]
    patch = {"spec": {"images": {image: {"tags": tags} if tags else None}}}
    patching.write(kube, resources.NODE_IMAGES, raw, patch)


def delete_jobs(kube: objects.ObjectApi, namespace: str) -> None:
    """Delete every job of the namespace and wait until they are gone (the scheduler removes finalizers)."""
    for resource in (resources.IMAGE_LIST_PULL_JOBS, resources.IMAGE_PULL_JOBS):
        for item in kube.list(resource, namespace=namespace).items:
            with contextlib.suppress(errors.NotFound):
                kube.delete(resource, item["metadata"]["name"], namespace=namespace)
    wait_until(
        lambda: not kube.list(resources.IMAGE_PULL_JOBS, namespace=namespace).items,
        timeout=TIMEOUT,
        what="jobs deleted",
    )
