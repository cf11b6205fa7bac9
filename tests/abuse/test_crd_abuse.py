"""Abusive objects against the real apiserver with prepull running: wrong types, huge values and strings, unicode,
hundreds of images, garbage image references.

Each object is either refused at create time with a message naming what is wrong, or accepted and then reported
in the job's status; in both cases every service keeps running (no crash, so no crash loop). The per-rule
rejection messages are in tests/integration/test_crd_validation.py; these are the inputs no rule was written for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import kubernetes.client
import pytest

from localcluster.cluster import LocalCluster
from localcluster.process import wait_until
from localcluster.system import PrepullSystem
from tests.support.system_helpers import (
    GROUP,
    VERSION,
    assert_all_services_healthy,
    custom,
    fresh_namespace,
    node_image_tags,
)

pytestmark = pytest.mark.integration

PLURALS = {"ImagePullJob": "imagepulljobs", "ImageListPullJob": "imagelistpulljobs", "NodeImage": "nodeimages"}
HUGE_STRING = "a" * 100_000
UNICODE = "\u30a4\u30e1\u30fc\u30b8-\U0001f600-\u202e-\u0000"


@dataclass(frozen=True)
class Abuse:
    """An abusive object and the substrings the apiserver's refusal must contain (empty: it is accepted)."""

    id: str
    kind: str
    spec: dict[str, Any] = field(repr=False)
    refused_with: tuple[str, ...] = ()


def job(**spec: Any) -> dict[str, Any]:
    return {"image": "nginx:1.25"} | spec


def list_job(**spec: Any) -> dict[str, Any]:
    return {"images": ["nginx:1.25"]} | spec


CASES = [
    Abuse("image-as-number", "ImagePullJob", {"image": 12345}, ("spec.image", "string")),
    Abuse("image-as-object", "ImagePullJob", {"image": {"name": "nginx"}}, ("spec.image", "string")),
    Abuse("parallelism-as-word", "ImagePullJob", job(parallelism="many"), ("spec.parallelism",)),
    Abuse("parallelism-huge", "ImagePullJob", job(parallelism=2**63 - 1), ("spec.parallelism",)),
    Abuse("parallelism-negative", "ImagePullJob", job(parallelism=-1), ("spec.parallelism",)),
    Abuse("selector-as-string", "ImagePullJob", job(selector="zone=a"), ("spec.selector", "object")),
    Abuse("pull-secrets-as-string", "ImagePullJob", job(pullSecrets="registry-auth"), ("spec.pullSecrets", "array")),
    Abuse(
        "deadline-huge",
        "ImagePullJob",
        job(completionPolicy={"type": "Always", "activeDeadlineSeconds": 10**30}),
        ("activeDeadlineSeconds",),
    ),
    Abuse(
        "backoff-as-float",
        "ImagePullJob",
        job(pullPolicy={"backoffLimit": 1.5, "timeoutSeconds": 60}),
        ("backoffLimit",),
    ),
    Abuse("image-huge-string", "ImagePullJob", {"image": HUGE_STRING}, ("spec.image", "Too long")),
    Abuse("image-unicode", "ImagePullJob", {"image": UNICODE}, ("spec.image",)),
    Abuse("image-garbage", "ImagePullJob", {"image": "::::@@@"}, ("spec.image",)),
    Abuse("image-uppercase-repo", "ImagePullJob", {"image": "Registry.example/UPPER/Case:tag"}, ("spec.image",)),
    Abuse("image-bad-digest", "ImagePullJob", {"image": "nginx@sha256:zz"}, ("spec.image",)),
    Abuse("images-300", "ImageListPullJob", {"images": [f"r/img-{i}:v1" for i in range(300)]}, ("spec.images",)),
    Abuse("images-as-map", "ImageListPullJob", {"images": {"a": "nginx"}}, ("spec.images", "array")),
    Abuse("images-huge-string", "ImageListPullJob", list_job(images=[HUGE_STRING]), ("spec.images",)),
    Abuse(
        "node-images-300",
        "NodeImage",
        {"images": {f"img-{i}": {"tags": [{"tag": "v1"}]} for i in range(300)}},
        ("spec.images",),
    ),
    Abuse("node-image-tags-as-string", "NodeImage", {"images": {"nginx": {"tags": "latest"}}}, ("tags",)),
]


def create(local: LocalCluster, namespace: str, abuse: Abuse) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": abuse.kind, "metadata": {"name": "abuse"}, "spec": abuse.spec}
    api = custom(local)
    if abuse.kind == "NodeImage":
        body["metadata"] = {"name": f"abuse-{abuse.id}"}
        api.create_cluster_custom_object(GROUP, VERSION, PLURALS[abuse.kind], body)
    else:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[abuse.kind], body)


@pytest.mark.parametrize("abuse", [pytest.param(case, id=case.id) for case in CASES])
def test_abusive_object_is_refused_with_a_clear_message_and_nothing_crashes(
    abuse_system: tuple[LocalCluster, PrepullSystem], abuse: Abuse
) -> None:
    local, services = abuse_system
    with fresh_namespace(local, "abuse") as namespace:
        with pytest.raises(kubernetes.client.ApiException) as refused:
            create(local, namespace, abuse)
        message = json.loads(refused.value.body)["message"]
        assert refused.value.status == 422, message[:500]
        for part in abuse.refused_with:
            assert part in message, message[:500]
        assert len(message) < 20_000, "the refusal should not echo a huge value back in full"
    assert_all_services_healthy(services)


# Names the NodeImage schema lets through but no registry could serve: the puller must report them, not choke.
UNPULLABLE_NAMES = [UNICODE, "::::@@@", "x" * 200]


def test_unpullable_node_image_names_are_reported_failed_in_status(
    abuse_system: tuple[LocalCluster, PrepullSystem],
) -> None:
    local, services = abuse_system
    node = next(iter(local.nodes))
    wait_until(lambda: bool(node_image_tags_or_none(local, node) is not None), timeout=60, what="NodeImage")
    policy = {"ttlSecondsAfterFinished": 300, "backoffLimit": 0, "timeoutSeconds": 30}
    images = {name: {"tags": [{"tag": "v1", "pullPolicy": policy}]} for name in UNPULLABLE_NAMES}
    custom(local).patch_cluster_custom_object(GROUP, VERSION, "nodeimages", node, {"spec": {"images": images}})

    def all_failed() -> bool:
        tags = node_image_tags_or_none(local, node) or {}
        return all(any(t.get("phase") == "Failed" for t in tags.get(name, [])) for name in UNPULLABLE_NAMES)

    wait_until(all_failed, timeout=90, interval=0.5, what="every unpullable name to be Failed in status")
    tags = node_image_tags_or_none(local, node) or {}
    for name in UNPULLABLE_NAMES:
        failed = next(t for t in tags[name] if t.get("phase") == "Failed")
        assert failed.get("message"), failed
    assert_all_services_healthy(services)
    removal = {"spec": {"images": dict.fromkeys(UNPULLABLE_NAMES)}}
    custom(local).patch_cluster_custom_object(GROUP, VERSION, "nodeimages", node, removal)


def node_image_tags_or_none(local: LocalCluster, node: str) -> dict[str, list[dict[str, Any]]] | None:
    try:
        return node_image_tags(local, node)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise
