"""Faults during pulls: registry outages, slow registries, timeouts, deadlines, removed and bumped tags."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from localcluster.faultproxy import FaultProxy
from localcluster.images import PushedImage
from services.shared.api import imageref
from services.shared.kube import resources
from tests.integration.puller.conftest import NodeImages, PullerFactory, wait_until
from tests.support.node_fixtures import ContainerdNodes

pytestmark = pytest.mark.integration

FINAL = ("Succeeded", "Failed")
CRAWL = 8 << 10
"""Bytes per second through the fault proxy that make a pull of a few MiB last minutes."""


def via_proxy(pushed: PushedImage, proxy: FaultProxy) -> tuple[str, str, str]:
    """NodeImage key, tag and CRI reference of `pushed` served through the fault proxy."""
    reference = imageref.parse(pushed.reference_via(proxy.address))
    image, tag = reference.nodeimage_entry()
    return image, tag, reference.pullable()


def test_registry_down_then_up_within_the_backoff_succeeds(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    fault_proxy: FaultProxy,
) -> None:
    image, tag, reference = via_proxy(unique_image(), fault_proxy)
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.a)
    fault_proxy.fail_with(503)
    policy = {"backoffLimit": 30, "ttlSecondsAfterFinished": 60}
    node_images.set_image(name, image, [{"tag": tag, "pullPolicy": policy}])

    wait_until(lambda: puller.images.pulls_of(reference) >= 2, "two failed attempts against the failing registry")
    assert node_images.wait_for(name, image, tag, ("Pulling",))["phase"] == "Pulling"
    fault_proxy.pass_through()

    status = node_images.wait_for(name, image, tag, FINAL)
    assert status["phase"] == "Succeeded", status


def test_attempt_timeout_fails_with_a_clear_message(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    fault_proxy: FaultProxy,
) -> None:
    image, tag, reference = via_proxy(unique_image(total_bytes=2 << 20), fault_proxy)
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.a)
    fault_proxy.limit_rate(CRAWL)
    policy = {"timeoutSeconds": 2, "backoffLimit": 1, "ttlSecondsAfterFinished": 60}
    node_images.set_image(name, image, [{"tag": tag, "pullPolicy": policy}])

    status = node_images.wait_for(name, image, tag, FINAL)

    assert status["phase"] == "Failed"
    assert "timed out after 2s" in status["message"], status
    assert puller.images.pulls_of(reference) == 2


def test_deadline_stops_retrying(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    fault_proxy: FaultProxy,
) -> None:
    image, tag, _ = via_proxy(unique_image(total_bytes=2 << 20), fault_proxy)
    name = node_images.create()
    start_puller(name, containerd_nodes.a)
    fault_proxy.limit_rate(CRAWL)
    policy = {"activeDeadlineSeconds": 2, "backoffLimit": 10, "ttlSecondsAfterFinished": 60}
    node_images.set_image(name, image, [{"tag": tag, "pullPolicy": policy}])

    status = node_images.wait_for(name, image, tag, FINAL)

    assert status["phase"] == "Failed"
    assert status["message"] == "pulling exceeds the activeDeadlineSeconds", status


def test_removed_tag_cancels_its_pull_and_writes_nothing_back(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    fault_proxy: FaultProxy,
) -> None:
    image, tag, reference = via_proxy(unique_image(total_bytes=4 << 20), fault_proxy)
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.a)
    fault_proxy.limit_rate(CRAWL)
    node_images.set_image(name, image, [{"tag": tag}])
    node_images.wait_for(name, image, tag, ("Pulling",))
    wait_until(lambda: puller.images.in_flight == 1, "the CRI pull to be in flight")

    node_images.remove_image(name, image)

    wait_until(lambda: puller.images.in_flight == 0, "the CRI pull to be cancelled")
    wait_until(lambda: puller.app.workers.running() == 0, "the tag's worker to stop")
    wait_until(lambda: node_images.tag_status(name, image, tag) is None, "the tag's status to leave")
    fault_proxy.pass_through()
    status = node_images.get(name)["status"]
    assert status["desired"] == 0
    assert not status.get("imageStatuses")
    assert puller.images.image_status(reference) is None
    assert puller.images.pulls_of(reference) == 1


def test_version_bump_mid_pull_restarts_the_pull(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    fault_proxy: FaultProxy,
) -> None:
    image, tag, reference = via_proxy(unique_image(total_bytes=4 << 20), fault_proxy)
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.a)
    fault_proxy.limit_rate(CRAWL)
    node_images.set_image(name, image, [{"tag": tag}])
    node_images.wait_for(name, image, tag, ("Pulling",))
    wait_until(lambda: puller.images.in_flight == 1, "the first CRI pull to be in flight")

    fault_proxy.pass_through()  # for new requests only: the first pull's downloads keep crawling
    node_images.set_image(name, image, [{"tag": tag, "version": 1}])
    wait_until(lambda: puller.images.pulls_of(reference) == 2, "a second pull for version 1")

    status = node_images.wait_for(name, image, tag, FINAL, version=1)
    assert status["phase"] == "Succeeded", status


def test_concurrency_limit_is_respected(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    fault_proxy: FaultProxy,
) -> None:
    entries = [via_proxy(unique_image(total_bytes=128 << 10, layers=1), fault_proxy) for _ in range(5)]
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.b, workers=2)
    fault_proxy.limit_rate(64 << 10)
    node_images.set_images(name, {image: [{"tag": tag}] for image, tag, _ in entries})

    for image, tag, _ in entries:
        assert node_images.wait_for(name, image, tag, FINAL)["phase"] == "Succeeded"
    assert puller.images.max_in_flight == 2
    assert len(puller.images.pull_calls) == 5


def test_disk_guard_refuses_with_free_space_and_threshold(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
) -> None:
    pushed = unique_image()
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.a, min_free_disk_bytes=1 << 60)
    image, tag = imageref.parse(pushed.reference).nodeimage_entry()
    node_images.set_image(name, image, [{"tag": tag, "pullPolicy": {"backoffLimit": 0, "ttlSecondsAfterFinished": 60}}])

    status = node_images.wait_for(name, image, tag, FINAL)

    assert status["phase"] == "Failed"
    assert "free on the image filesystem" in status["message"], status
    assert "threshold of 1.0 EiB" in status["message"], status
    assert puller.images.pull_calls == []


def test_puller_restart_mid_pull_ends_in_a_final_phase(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    fault_proxy: FaultProxy,
) -> None:
    image, tag, reference = via_proxy(unique_image(total_bytes=4 << 20), fault_proxy)
    name = node_images.create()
    first = start_puller(name, containerd_nodes.b)
    fault_proxy.limit_rate(CRAWL)
    node_images.set_image(name, image, [{"tag": tag}])
    before = node_images.wait_for(name, image, tag, ("Pulling",))
    wait_until(lambda: first.images.in_flight == 1, "the first puller's pull to be in flight")

    first.app.stop()
    stopped_at = node_images.tag_status(name, image, tag)
    assert stopped_at is not None
    assert stopped_at["phase"] == "Pulling"
    fault_proxy.pass_through()
    second = start_puller(name, containerd_nodes.b)

    status = node_images.wait_for(name, image, tag, FINAL)
    assert status["phase"] == "Succeeded", status
    assert status["startTime"] >= before["startTime"]
    assert second.images.pulls_of(reference) == 1

    # A third puller finds the round finished and pulls nothing.
    second.app.stop()
    third = start_puller(name, containerd_nodes.b)
    wait_until(lambda: bool(third.app.book.snapshot()), "the third puller to adopt the finished status")
    assert node_images.wait_for(name, image, tag, FINAL)["phase"] == "Succeeded"
    assert third.app.workers.versions() == {}
    assert third.images.pull_calls == []


def test_containerd_restart_mid_pull_ends_in_a_final_phase(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    fault_proxy: FaultProxy,
) -> None:
    image, tag, _ = via_proxy(unique_image(total_bytes=4 << 20), fault_proxy)
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.b)
    fault_proxy.limit_rate(CRAWL)
    policy = {"backoffLimit": 10, "ttlSecondsAfterFinished": 60}
    node_images.set_image(name, image, [{"tag": tag, "pullPolicy": policy}])
    node_images.wait_for(name, image, tag, ("Pulling",))
    wait_until(lambda: puller.images.in_flight == 1, "the pull to be in flight")

    # New requests pass at full speed from now on (so the retry after the restart is not slowed down); the
    # download in flight keeps crawling until containerd goes away with it.
    fault_proxy.pass_through()
    containerd_nodes.b.restart()

    status = node_images.wait_for(name, image, tag, FINAL)
    assert status["phase"] == "Succeeded", status


def test_two_pullers_touch_only_their_own_node_image(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
) -> None:
    pushed = unique_image()
    mine, theirs = node_images.create(), node_images.create()
    first = start_puller(mine, containerd_nodes.a)
    second = start_puller(theirs, containerd_nodes.b)
    image, tag = imageref.parse(pushed.reference).nodeimage_entry()
    node_images.set_image(mine, image, [{"tag": tag, "imagePullPolicy": "Always"}])

    assert node_images.wait_for(mine, image, tag, FINAL)["phase"] == "Succeeded"
    assert len(first.images.pull_calls) == 1
    assert second.images.pull_calls == []
    assert node_images.tag_status(theirs, image, tag) is None
    assert second.images.image_status(imageref.parse(pushed.reference).pullable()) is None


def test_byte_progress_is_written_while_pulling(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    fault_proxy: FaultProxy,
) -> None:
    # containerd advances an ingestion's offset per 1 MiB copied, so layers must be a few MiB to show progress.
    pushed = unique_image(total_bytes=8 << 20, layers=2)
    image, tag, _ = via_proxy(pushed, fault_proxy)
    name = node_images.create()
    start_puller(name, containerd_nodes.a, byte_progress=True)
    fault_proxy.limit_rate(1 << 20)
    node_images.set_image(name, image, [{"tag": tag}])

    seen: list[dict[str, object]] = []

    def partial_progress() -> bool:
        status = node_images.tag_status(name, image, tag) or {}
        if status.get("phase") == "Pulling" and int(str(status.get("pulledBytes", 0))) > 0:
            seen.append(status)
        return bool(seen) or status.get("phase") in FINAL

    wait_until(partial_progress, "a Pulling status with byte progress")
    fault_proxy.pass_through()
    final = node_images.wait_for(name, image, tag, FINAL)

    assert seen, f"no byte progress seen before {final}"
    layer_bytes = sum(layer.size for layer in pushed.image.layers)
    assert 0 < int(str(seen[0]["pulledBytes"])) <= int(str(seen[0]["totalBytes"])) <= layer_bytes
    assert 0 <= int(str(seen[0].get("progress", 0))) < 100
    assert final["phase"] == "Succeeded"
    assert final["progress"] == 100


def test_final_status_written_by_another_component_is_adopted(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    fault_proxy: FaultProxy,
) -> None:
    image, tag, _ = via_proxy(unique_image(total_bytes=4 << 20), fault_proxy)
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.b)
    fault_proxy.limit_rate(CRAWL)
    node_images.set_image(name, image, [{"tag": tag}])
    pulling = node_images.wait_for(name, image, tag, ("Pulling",))
    wait_until(lambda: puller.images.in_flight == 1, "the pull to be in flight")

    # nodeimage_sync fails the tag on its response timeout, writing the status as it would.
    failed = {**pulling, "phase": "Failed", "completionTime": pulling["startTime"], "message": "node timed out"}
    status = {"desired": 1, "failed": 1, "pulling": 0, "imageStatuses": {image: {"tags": [failed]}}}
    node_images.api.patch_status(resources.NODE_IMAGES, name, {"status": status})

    wait_until(lambda: puller.images.in_flight == 0, "the puller to stop its pull")
    fault_proxy.pass_through()
    final = node_images.wait_for(name, image, tag, FINAL)
    assert (final["phase"], final["message"]) == ("Failed", "node timed out")
    assert puller.app.workers.versions() == {}


def test_many_changes_go_out_in_few_status_writes(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
) -> None:
    pushed = [unique_image(total_bytes=16 << 10, layers=1) for _ in range(10)]
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.a, status_write_qps=0.2, status_write_burst=1, workers=10)
    for each in pushed:
        image, tag = imageref.parse(each.reference).nodeimage_entry()
        node_images.set_image(name, image, [{"tag": tag}])

    wait_until(lambda: (node_images.get(name).get("status") or {}).get("succeeded") == 10, "10 succeeded tags")

    # 10 tags with 3 phase changes each went out in a handful of writes.
    assert puller.app.writer.writes < 15
