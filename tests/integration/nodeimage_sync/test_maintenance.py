"""NodeImage spec and status maintenance against the real apiserver (upstream §4.2-§4.4), one rule per test."""

from __future__ import annotations

import datetime
from typing import Any

import kubernetes.client
import pytest

from services.shared.api import constants, timefmt
from services.shared.kube import resources
from tests.integration.nodeimage_sync.conftest import SyncHarness

pytestmark = pytest.mark.integration

NOT_RESPONDING = "node has not responded for a long time"
DEADLINE = "pulling exceeds the activeDeadlineSeconds"


def now_text(offset: float = 0.0) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
    return timefmt.format_time(moment.replace(microsecond=0))


def owner(job: dict[str, Any]) -> dict[str, str]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND_IMAGE_PULL_JOB,
        "namespace": job["metadata"]["namespace"],
        "name": job["metadata"]["name"],
        "uid": job["metadata"]["uid"],
    }


def a_tag(tag: str = "1.25", *, owners: list[dict[str, str]] | None = None, **policy: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "tag": tag,
        "createdAt": now_text(),
        "pullPolicy": {"ttlSecondsAfterFinished": 3600, **policy},
        "version": 0,
    }
    if owners is not None:
        entry["ownerReferences"] = owners
    return entry


def images(nodeimage: dict[str, Any] | None) -> dict[str, Any]:
    return ((nodeimage or {}).get("spec") or {}).get("images") or {}


def tags(nodeimage: dict[str, Any] | None, image: str = "nginx") -> list[str]:
    return [t["tag"] for t in (images(nodeimage).get(image) or {}).get("tags") or []]


def status_tag(nodeimage: dict[str, Any] | None, image: str = "nginx", tag: str = "1.25") -> dict[str, Any]:
    statuses = ((nodeimage or {}).get("status") or {}).get("imageStatuses") or {}
    return next((t for t in (statuses.get(image) or {}).get("tags") or [] if t["tag"] == tag), {})


def set_images(sync: SyncHarness, name: str, value: dict[str, Any]) -> None:
    sync.api.patch(resources.NODE_IMAGES, name, {"spec": {"images": value}})


def events_about(sync: SyncHarness, name: str, namespace: str) -> list[str]:
    listed = kubernetes.client.CoreV1Api(sync.admin).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},reason=PullImageFailed"
    )
    return [f"{e.type}|{e.message}" for e in listed.items]


def test_tag_of_a_deleted_job_is_removed_within_seconds(sync: SyncHarness):
    sync.start()
    kept_job = sync.create_job("kept")
    gone_job = sync.create_job("gone")
    name = f"fake-{sync.run_id}"
    sync.create_fake_nodeimage(name)
    set_images(
        sync,
        name,
        {
            "nginx": {"tags": [a_tag("1.25", owners=[owner(gone_job)]), a_tag("1.26", owners=[owner(kept_job)])]},
            "redis": {"tags": [a_tag("7", owners=[owner(gone_job)])]},
        },
    )
    sync.api.delete(resources.IMAGE_PULL_JOBS, "gone", namespace=sync.namespace)
    sync.wait_for(lambda: "redis" not in images(sync.nodeimage(name)), "the deleted job's image removed", 20)
    assert tags(sync.nodeimage(name)) == ["1.26"]


def test_owner_with_another_uid_is_dropped_and_other_kinds_are_kept(sync: SyncHarness):
    job = sync.create_job("same-name")
    stale = owner(job) | {"uid": "00000000-0000-0000-0000-000000000000"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": sync.namespace, "name": "d", "uid": "x"}
    name = f"fake-{sync.run_id}"
    sync.create_fake_nodeimage(name)
    set_images(
        sync,
        name,
        {"nginx": {"tags": [a_tag("1.25", owners=[stale]), a_tag("1.26", owners=[stale, deployment])]}},
    )
    sync.start()
    sync.wait_for(lambda: tags(sync.nodeimage(name)) == ["1.26"], "the tag owned only by a stale UID removed")
    (entry,) = images(sync.nodeimage(name))["nginx"]["tags"]
    assert entry["ownerReferences"] == [deployment]


def test_hand_written_tag_without_created_at_is_stamped_and_kept(sync: SyncHarness):
    sync.start()
    name = f"fake-{sync.run_id}"
    sync.create_fake_nodeimage(name)
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    sync.control_plane.kubectl(
        "patch",
        "nodeimage",
        name,
        "--type=merge",
        "-p",
        '{"spec":{"images":{"ubuntu":{"tags":[{"tag":"latest","pullPolicy":{"ttlSecondsAfterFinished":300}}]}}}}',
    )
    sync.wait_for(lambda: images(sync.nodeimage(name))["ubuntu"]["tags"][0].get("createdAt"), "createdAt stamped")
    stamped = timefmt.parse_time(images(sync.nodeimage(name))["ubuntu"]["tags"][0]["createdAt"])
    assert stamped >= before
    assert tags(sync.nodeimage(name), "ubuntu") == ["latest"]


def test_finished_tag_expires_after_its_ttl_from_spec_and_status(sync: SyncHarness):
    sync.start()
    name = f"fake-{sync.run_id}"
    sync.create_fake_nodeimage(name)
    set_images(sync, name, {"nginx": {"tags": [a_tag("1.25", ttlSecondsAfterFinished=2), a_tag("1.26")]}})
    finished = {"tag": "1.25", "phase": "Succeeded", "version": 0, "completionTime": now_text()}
    other_version = {"tag": "1.26", "phase": "Succeeded", "version": 7, "completionTime": now_text(-7200)}
    sync.api.patch_status(
        resources.NODE_IMAGES,
        name,
        {"status": {"desired": 2, "succeeded": 2, "imageStatuses": {"nginx": {"tags": [finished, other_version]}}}},
    )
    sync.wait_for(lambda: tags(sync.nodeimage(name)) == ["1.26"], "the finished tag removed after its TTL", 30)
    sync.wait_for(lambda: not status_tag(sync.nodeimage(name)), "its status entry removed too", 30)


def test_unanswered_tag_fails_after_the_response_timeout_with_events(sync: SyncHarness):
    job = sync.create_job("silent")
    sync.start(response_timeout=3.0)
    node = sync.register_node()
    sync.wait_for(lambda: sync.nodeimage(node), "NodeImage created")
    set_images(sync, node, {"nginx": {"tags": [a_tag("1.25", owners=[owner(job)])]}})
    sync.wait_for(lambda: status_tag(sync.nodeimage(node)).get("phase") == "Failed", "tag failed", 30)
    entry = status_tag(sync.nodeimage(node))
    assert entry["message"] == NOT_RESPONDING
    assert entry.get("version", 0) == 0  # version 0 is omitted on the wire, as in Go
    assert entry.get("completionTime")
    assert (sync.nodeimage(node) or {})["status"]["failed"] == 1
    expected = f"Warning|Failed to pull image nginx:1.25 on node {node} for {NOT_RESPONDING}"
    sync.wait_for(lambda: expected in events_about(sync, "silent", sync.namespace), "Warning event on the job")
    sync.wait_for(lambda: expected in events_about(sync, node, "default"), "Warning event on the NodeImage")


def test_unfinished_tag_fails_after_its_deadline(sync: SyncHarness):
    job = sync.create_job("slow")
    sync.start(response_timeout=2.0)
    name = f"fake-{sync.run_id}"
    sync.create_fake_nodeimage(name)
    set_images(sync, name, {"nginx": {"tags": [a_tag("1.25", owners=[owner(job)], activeDeadlineSeconds=2)]}})
    pulling = {"tag": "1.25", "phase": "Pulling", "version": 0, "startTime": now_text()}
    sync.api.patch_status(
        resources.NODE_IMAGES,
        name,
        {"status": {"desired": 1, "pulling": 1, "imageStatuses": {"nginx": {"tags": [pulling]}}}},
    )
    sync.wait_for(lambda: status_tag(sync.nodeimage(name)).get("phase") == "Failed", "tag failed at deadline", 30)
    assert status_tag(sync.nodeimage(name))["message"] == DEADLINE
    expected = f"Warning|Failed to pull image nginx:1.25 on node {name} for {DEADLINE}"
    sync.wait_for(lambda: expected in events_about(sync, "slow", sync.namespace), "Warning event on the job")
