"""Shared helpers for tests that run the whole product: cluster + three services, jobs, namespaces, images.

The end-to-end, chaos and abuse suites all need the same few moves: start a `LocalCluster` with `PrepullSystem`
on it, make a namespace, push a small image, create an ImagePullJob and poll it until it finishes.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes.client
import urllib3

from localcluster.cluster import LocalCluster
from localcluster.images import ImageBuilder, ImageRecipe, PushedImage, push
from localcluster.process import wait_until
from localcluster.registry import Credentials
from localcluster.system import PrepullSystem

GROUP, VERSION = "prepull.io", "v1beta1"
FULL_SUITE_ENV = "PREPULL_CHAOS_FULL"


def full_suite() -> bool:
    """True under `make chaos` (`PREPULL_CHAOS_FULL=1`): more iterations and fuzz examples than `make test`."""
    return os.environ.get(FULL_SUITE_ENV, "") not in ("", "0")


class RegistryAt:
    """A registry as the image pusher needs it: address and optional credentials."""

    def __init__(self, address: str, credentials: Credentials | None = None) -> None:
        self.address = address
        self.credentials = credentials


@contextlib.contextmanager
def running_system(
    state_dir: Path, *, node_count: int, extra_flags: Mapping[str, Sequence[str]] | None = None
) -> Iterator[tuple[LocalCluster, PrepullSystem]]:
    """A local cluster with prepull installed and its three services running; everything stopped on exit."""
    local = LocalCluster(state_dir, node_count=node_count)
    local.start()
    flags = {"nodeimage_sync": ["--creation-delay", "1s"], **(extra_flags or {})}
    services = PrepullSystem(local.describe(), extra_flags=flags)
    try:
        services.install()
        services.start()
        yield local, services
    finally:
        logs = services.log_tails(40)
        services.stop()
        local.stop()
        print(logs)


def custom(local: LocalCluster) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(local.api_client())


@contextlib.contextmanager
def fresh_namespace(local: LocalCluster, prefix: str) -> Iterator[str]:
    """A new namespace, deleted afterwards (without waiting for it to go)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core = kubernetes.client.CoreV1Api(local.api_client())
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(kubernetes.client.ApiException):
            core.delete_namespace(name)


def create_job(local: LocalCluster, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ImagePullJob", "metadata": {"name": name}, "spec": spec}
    custom(local).create_namespaced_custom_object(GROUP, VERSION, namespace, "imagepulljobs", body)


def job_status(local: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    job = custom(local).get_namespaced_custom_object(GROUP, VERSION, namespace, "imagepulljobs", name)
    status: dict[str, Any] = job.get("status") or {}
    return status


def wait_for_completion(local: LocalCluster, namespace: str, name: str, *, timeout: float) -> dict[str, Any]:
    """Poll until the job has a completionTime; return its status. API errors (apiserver down) are retried."""
    seen: dict[str, Any] = {}

    def complete() -> bool:
        try:
            seen.update(job_status(local, namespace, name))
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError):  # apiserver restarting
            return False
        return bool(seen.get("completionTime"))

    wait_until(complete, timeout=timeout, interval=0.5, what=f"job {namespace}/{name} to complete ({seen})")
    return seen


def node_image_tags(local: LocalCluster, node: str) -> dict[str, list[dict[str, Any]]]:
    """`image name -> status tags` of that node's NodeImage."""
    status = custom(local).get_cluster_custom_object(GROUP, VERSION, "nodeimages", node).get("status") or {}
    return {name: entry.get("tags", []) for name, entry in (status.get("imageStatuses") or {}).items()}


def push_small_image(builder: ImageBuilder, registry: RegistryAt, repository: str, *, size: int = 2**20) -> PushedImage:
    """A fresh image (random content) of `size` bytes in two layers, tag v1."""
    recipe = ImageRecipe(name=repository, total_bytes=size, layers=2, seed=uuid.uuid4().hex)
    return push(builder.build(recipe), registry, repository, "v1")


def assert_all_services_healthy(services: PrepullSystem) -> None:
    """Every service process still runs (no crash, so no crash loop) and answers /readyz."""
    for service in services.services.values():
        assert service.process.alive(), f"{service.name} exited:\n{service.process.log_tail(30)}"
        assert service.ready(), service.name
