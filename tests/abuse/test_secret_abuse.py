"""Broken pull secrets on real jobs: malformed dockerconfigjson, wrong types, missing or deleted secrets.

Each job names one bad secret for an image in the password-protected registry. The job must end (no retry loop
without end), and a Warning event on the job must name the secret and say what is wrong, never showing a
credential; the services stay up.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes.client
import pytest

from localcluster.cluster import LocalCluster
from localcluster.images import ImageBuilder
from localcluster.process import wait_until
from localcluster.system import PrepullSystem
from tests.support.system_helpers import (
    RegistryAt,
    assert_all_services_healthy,
    create_job,
    fresh_namespace,
    push_small_image,
    wait_for_completion,
)

pytestmark = pytest.mark.integration

SECRET = "broken-auth"
JOB_TIMEOUT = 120.0


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass(frozen=True)
class BrokenSecret:
    """A secret body (or none: the job names a secret that does not exist) and the event it must cause."""

    id: str
    body: dict[str, Any] | None
    reason: str
    says: str


BROKEN = [
    BrokenSecret(
        "auth-not-base64",
        {
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": b64('{"auths": {"r": {"auth": "%%%"}}}')},
        },
        "InvalidPullSecret",
        "not valid base64",
    ),
    BrokenSecret(
        "no-auths",
        {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64('{"credsStore": "desktop"}')}},
        "InvalidPullSecret",
        'no "auths"',
    ),
    BrokenSecret(
        "opaque-type",
        {"type": "Opaque", "data": {".dockerconfigjson": b64('{"auths": {}}')}},
        "InvalidPullSecret",
        "type",
    ),
    BrokenSecret(
        "basic-auth-type",
        {"type": "kubernetes.io/basic-auth", "data": {"username": b64("u"), "password": b64("p")}},
        "InvalidPullSecret",
        "type",
    ),
    BrokenSecret("missing", None, "PullSecretNotFound", "does not exist"),
]


@pytest.fixture(scope="module")
def private_reference(
    abuse_system: tuple[LocalCluster, PrepullSystem], tmp_path_factory: pytest.TempPathFactory
) -> str:
    local, _ = abuse_system
    credentials = local.auth_registry.credentials
    assert credentials is not None
    builder = ImageBuilder(tmp_path_factory.mktemp("secret-abuse-images"))
    return push_small_image(builder, RegistryAt(local.auth_registry.address, credentials), "abuse/private").reference


def job_events(local: LocalCluster, namespace: str, job: str) -> list[Any]:
    listed = kubernetes.client.CoreV1Api(local.api_client()).list_namespaced_event(namespace)
    return [e for e in listed.items if e.involved_object.name == job and e.involved_object.kind == "ImagePullJob"]


def run_job_with_secret(
    local: LocalCluster,
    namespace: str,
    reference: str,
    secret: dict[str, Any] | None,
    after_create: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    if secret is not None:
        kubernetes.client.CoreV1Api(local.api_client()).create_namespaced_secret(
            namespace, {"metadata": {"name": SECRET}} | secret
        )
    spec = {
        "image": reference,
        "pullSecrets": [SECRET],
        "pullPolicy": {"backoffLimit": 0, "timeoutSeconds": 60},
        "completionPolicy": {"type": "Always"},
    }
    create_job(local, namespace, "broken", spec)
    after_create()
    return wait_for_completion(local, namespace, "broken", timeout=JOB_TIMEOUT)


@pytest.mark.parametrize("broken", [pytest.param(b, id=b.id) for b in BROKEN])
def test_broken_secret_gives_a_clear_job_event_and_the_job_ends(
    abuse_system: tuple[LocalCluster, PrepullSystem], private_reference: str, broken: BrokenSecret
) -> None:
    local, services = abuse_system
    with fresh_namespace(local, "secret-abuse") as namespace:
        status = run_job_with_secret(local, namespace, private_reference, broken.body)
        assert (status["desired"], status["succeeded"], status["failed"]) == (1, 0, 1), status

        def warned() -> bool:
            return any(e.reason == broken.reason for e in job_events(local, namespace, "broken"))

        wait_until(warned, timeout=30, interval=0.5, what=f"a {broken.reason} event on the job")
        event = next(e for e in job_events(local, namespace, "broken") if e.reason == broken.reason)
        assert event.type == "Warning"
        assert SECRET in event.message and broken.says in event.message, event.message
        credentials = local.auth_registry.credentials
        assert credentials is not None and credentials.password not in event.message
    assert_all_services_healthy(services)


def test_secret_deleted_right_after_the_job_is_created_still_ends_the_job(
    abuse_system: tuple[LocalCluster, PrepullSystem], private_reference: str
) -> None:
    """Whether the puller got the credentials before the delete or not, the job ends and says why if it failed."""
    local, services = abuse_system
    credentials = local.auth_registry.credentials
    assert credentials is not None
    auth = b64(f"{credentials.username}:{credentials.password}")
    config = {"auths": {local.auth_registry.address: {"auth": auth}}}
    secret = {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64(json.dumps(config))}}
    core = kubernetes.client.CoreV1Api(local.api_client())
    with fresh_namespace(local, "secret-deleted") as namespace:
        status = run_job_with_secret(
            local,
            namespace,
            private_reference,
            secret,
            after_create=lambda: core.delete_namespaced_secret(SECRET, namespace),
        )
        assert status["desired"] == 1 and status["succeeded"] + status["failed"] == 1, status
        if status["failed"]:
            wait_until(
                lambda: any(e.reason == "PullSecretNotFound" for e in job_events(local, namespace, "broken")),
                timeout=30,
                what="a PullSecretNotFound event explaining the failure",
            )
    assert_all_services_healthy(services)
