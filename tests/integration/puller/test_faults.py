"""Faults during pulls: registry outages, slow registries, timeouts, deadlines, removed and bumped tags.

Most tests share one set-up (`FaultRig.start_pull`): a unique image served through the fault proxy, a fresh
NodeImage with a puller on one node, a fault switched on, then the tag entry written; many then wait until
the pull is in flight (`FaultRig.wait_in_flight`) before changing something under it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest

from localcluster.containerd import ContainerdNode
from localcluster.faultproxy import FaultProxy
from localcluster.images import PushedImage
from services.shared.api import imageref
from services.shared.kube import resources
from tests.integration.puller.conftest import NodeImages, PullerFactory, PullerHandle, wait_until
from tests.support.node_fixtures import ContainerdNodes

pytestmark = pytest.mark.integration

FINAL = ("Succeeded", "Failed")
CRAWL = 8 << 10
"""Bytes per second through the fault proxy that make a pull of a few MiB last minutes."""


class ProxiedTag(NamedTuple):
    """A pushed image's NodeImage entry and CRI reference, served through the fault proxy."""

    image: str
    tag: str
    reference: str


def via_proxy(pushed: PushedImage, proxy: FaultProxy) -> ProxiedTag:
    """NodeImage key, tag and CRI reference of `pushed` served through the fault proxy."""
    reference = imageref.parse(pushed.reference_via(proxy.address))
    image, tag = reference.nodeimage_entry()
    return ProxiedTag(image, tag, reference.pullable())


def crawl(proxy: FaultProxy) -> None:
    """The default fault: a pull of a few MiB lasts minutes."""
    proxy.limit_rate(CRAWL)


@dataclass(frozen=True)
class StartedPull:
    """A tag entry written into a NodeImage of this test, and the puller of that node."""

    node_image: str
    entry: ProxiedTag
    puller: PullerHandle


@dataclass(frozen=True)
class FaultRig:
    """The fixtures every fault test uses, and the set-up and wait steps most of them share."""

    node_images: NodeImages
    start_puller: PullerFactory
    containerd_nodes: ContainerdNodes
    unique_image: Callable[..., PushedImage]
    fault_proxy: FaultProxy

    def node_with_puller(self, node: ContainerdNode, **puller_options: Any) -> tuple[str, PullerHandle]:
        """A fresh NodeImage and a puller for it on `node`."""
        name = self.node_images.create()
        return name, self.start_puller(name, node, **puller_options)

    def start_pull(
        self,
        node: ContainerdNode,
        pushed: PushedImage,
        *,
        fault: Callable[[FaultProxy], None] = crawl,
        policy: dict[str, Any] | None = None,
        **puller_options: Any,
    ) -> StartedPull:
        """`pushed` through the proxy with `fault` on, its tag entry (with `policy`, if given) on a fresh node."""
        entry = via_proxy(pushed, self.fault_proxy)
        name, puller = self.node_with_puller(node, **puller_options)
        fault(self.fault_proxy)
        tag: dict[str, Any] = {"tag": entry.tag} if policy is None else {"tag": entry.tag, "pullPolicy": policy}
        self.node_images.set_image(name, entry.image, [tag])
        return StartedPull(name, entry, puller)

    def wait_in_flight(self, pull: StartedPull, what: str = "the pull to be in flight") -> dict[str, Any]:
        """Wait until the tag is Pulling and its CRI pull is in flight; returns the Pulling status."""
        pulling = self.node_images.wait_for(pull.node_image, pull.entry.image, pull.entry.tag, ("Pulling",))
        wait_until(lambda: pull.puller.images.in_flight == 1, what)
        return pulling

    def wait_final(self, pull: StartedPull, *, version: int = 0) -> dict[str, Any]:
        """The tag's status once it is Succeeded or Failed (at `version`)."""
        return self.node_images.wait_for(pull.node_image, pull.entry.image, pull.entry.tag, FINAL, version=version)


@pytest.fixture
def rig(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    fault_proxy: FaultProxy,
) -> FaultRig:
    """The fault tests' fixtures in one (the fault proxy passes through again after each test)."""
    return FaultRig(node_images, start_puller, containerd_nodes, unique_image, fault_proxy)


def test_registry_down_then_up_within_the_backoff_succeeds(rig: FaultRig) -> None:
    pull = rig.start_pull(
        rig.containerd_nodes.a,
        rig.unique_image(),
        fault=lambda proxy: proxy.fail_with(503),
        policy={"backoffLimit": 30, "ttlSecondsAfterFinished": 60},
    )

    wait_until(
        lambda: pull.puller.images.pulls_of(pull.entry.reference) >= 2,
        "two failed attempts against the failing registry",
    )
    image, tag, _ = pull.entry
    assert rig.node_images.wait_for(pull.node_image, image, tag, ("Pulling",))["phase"] == "Pulling"
    rig.fault_proxy.pass_through()

    status = rig.wait_final(pull)
    assert status["phase"] == "Succeeded", status


def test_attempt_timeout_fails_with_a_clear_message(rig: FaultRig) -> None:
    policy = {"timeoutSeconds": 2, "backoffLimit": 1, "ttlSecondsAfterFinished": 60}
    pull = rig.start_pull(rig.containerd_nodes.a, rig.unique_image(total_bytes=2 << 20), policy=policy)

    status = rig.wait_final(pull)

    assert status["phase"] == "Failed"
    assert "timed out after 2s" in status["message"], status
    assert pull.puller.images.pulls_of(pull.entry.reference) == 2


def test_deadline_stops_retrying(rig: FaultRig) -> None:
    policy = {"activeDeadlineSeconds": 2, "backoffLimit": 10, "ttlSecondsAfterFinished": 60}
    pull = rig.start_pull(rig.containerd_nodes.a, rig.unique_image(total_bytes=2 << 20), policy=policy)

    status = rig.wait_final(pull)

    assert status["phase"] == "Failed"
    assert status["message"] == "pulling exceeds the activeDeadlineSeconds", status


def test_removed_tag_cancels_its_pull_and_writes_nothing_back(rig: FaultRig) -> None:
    pull = rig.start_pull(rig.containerd_nodes.a, rig.unique_image(total_bytes=4 << 20))
    rig.wait_in_flight(pull, "the CRI pull to be in flight")
    name, (image, tag, reference), puller = pull.node_image, pull.entry, pull.puller

    rig.node_images.remove_image(name, image)

    wait_until(lambda: puller.images.in_flight == 0, "the CRI pull to be cancelled")
    wait_until(lambda: puller.app.workers.running() == 0, "the tag's worker to stop")
    wait_until(lambda: rig.node_images.tag_status(name, image, tag) is None, "the tag's status to leave")
    rig.fault_proxy.pass_through()
    status = rig.node_images.get(name)["status"]
    assert status["desired"] == 0
    assert not status.get("imageStatuses")
    assert puller.images.image_status(reference) is None
    assert puller.images.pulls_of(reference) == 1


def test_version_bump_mid_pull_restarts_the_pull(rig: FaultRig) -> None:
    pull = rig.start_pull(rig.containerd_nodes.a, rig.unique_image(total_bytes=4 << 20))
    rig.wait_in_flight(pull, "the first CRI pull to be in flight")

    rig.fault_proxy.pass_through()  # for new requests only: the first pull's downloads keep crawling
    rig.node_images.set_image(pull.node_image, pull.entry.image, [{"tag": pull.entry.tag, "version": 1}])
    wait_until(lambda: pull.puller.images.pulls_of(pull.entry.reference) == 2, "a second pull for version 1")

    status = rig.wait_final(pull, version=1)
    assert status["phase"] == "Succeeded", status


def test_concurrency_limit_is_respected(rig: FaultRig) -> None:
    entries = [via_proxy(rig.unique_image(total_bytes=128 << 10, layers=1), rig.fault_proxy) for _ in range(5)]
    name, puller = rig.node_with_puller(rig.containerd_nodes.b, workers=2)
    rig.fault_proxy.limit_rate(64 << 10)
    rig.node_images.set_images(name, {image: [{"tag": tag}] for image, tag, _ in entries})

    for image, tag, _ in entries:
        assert rig.node_images.wait_for(name, image, tag, FINAL)["phase"] == "Succeeded"
    assert puller.images.max_in_flight == 2
    assert len(puller.images.pull_calls) == 5


def test_disk_guard_refuses_with_free_space_and_threshold(rig: FaultRig) -> None:
    pushed = rig.unique_image()
    name, puller = rig.node_with_puller(rig.containerd_nodes.a, min_free_disk_bytes=1 << 60)
    image, tag = imageref.parse(pushed.reference).nodeimage_entry()
    policy = {"backoffLimit": 0, "ttlSecondsAfterFinished": 60}
    rig.node_images.set_image(name, image, [{"tag": tag, "pullPolicy": policy}])

    status = rig.node_images.wait_for(name, image, tag, FINAL)

    assert status["phase"] == "Failed"
    assert "free on the image filesystem" in status["message"], status
    assert "threshold of 1.0 EiB" in status["message"], status
    assert puller.images.pull_calls == []


def test_puller_restart_mid_pull_ends_in_a_final_phase(rig: FaultRig) -> None:
    pull = rig.start_pull(rig.containerd_nodes.b, rig.unique_image(total_bytes=4 << 20))
    before = rig.wait_in_flight(pull, "the first puller's pull to be in flight")
    name, (image, tag, reference), first = pull.node_image, pull.entry, pull.puller

    first.app.stop()
    stopped_at = rig.node_images.tag_status(name, image, tag)
    assert stopped_at is not None
    assert stopped_at["phase"] == "Pulling"
    rig.fault_proxy.pass_through()
    second = rig.start_puller(name, rig.containerd_nodes.b)

    status = rig.wait_final(pull)
    assert status["phase"] == "Succeeded", status
    assert status["startTime"] >= before["startTime"]
    assert second.images.pulls_of(reference) == 1

    # A third puller finds the round finished and pulls nothing.
    second.app.stop()
    third = rig.start_puller(name, rig.containerd_nodes.b)
    wait_until(lambda: bool(third.app.book.snapshot()), "the third puller to adopt the finished status")
    assert rig.wait_final(pull)["phase"] == "Succeeded"
    assert third.app.workers.versions() == {}
    assert third.images.pull_calls == []


def test_containerd_restart_mid_pull_ends_in_a_final_phase(rig: FaultRig) -> None:
    policy = {"backoffLimit": 10, "ttlSecondsAfterFinished": 60}
    pull = rig.start_pull(rig.containerd_nodes.b, rig.unique_image(total_bytes=4 << 20), policy=policy)
    rig.wait_in_flight(pull)

    # New requests pass at full speed from now on (so the retry after the restart is not slowed down); the
    # download in flight keeps crawling until containerd goes away with it.
    rig.fault_proxy.pass_through()
    rig.containerd_nodes.b.restart()

    status = rig.wait_final(pull)
    assert status["phase"] == "Succeeded", status


def test_two_pullers_touch_only_their_own_node_image(rig: FaultRig) -> None:
    pushed = rig.unique_image()
    mine, first = rig.node_with_puller(rig.containerd_nodes.a)
    theirs, second = rig.node_with_puller(rig.containerd_nodes.b)
    image, tag = imageref.parse(pushed.reference).nodeimage_entry()
    rig.node_images.set_image(mine, image, [{"tag": tag, "imagePullPolicy": "Always"}])

    assert rig.node_images.wait_for(mine, image, tag, FINAL)["phase"] == "Succeeded"
    assert len(first.images.pull_calls) == 1
    assert second.images.pull_calls == []
    assert rig.node_images.tag_status(theirs, image, tag) is None
    assert second.images.image_status(imageref.parse(pushed.reference).pullable()) is None


def test_byte_progress_is_written_while_pulling(rig: FaultRig) -> None:
    # containerd advances an ingestion's offset per 1 MiB copied, so layers must be a few MiB to show progress.
    pushed = rig.unique_image(total_bytes=8 << 20, layers=2)
    pull = rig.start_pull(
        rig.containerd_nodes.a, pushed, fault=lambda proxy: proxy.limit_rate(1 << 20), byte_progress=True
    )

    seen: list[dict[str, object]] = []

    def partial_progress() -> bool:
        status = rig.node_images.tag_status(pull.node_image, pull.entry.image, pull.entry.tag) or {}
        if status.get("phase") == "Pulling" and int(str(status.get("pulledBytes", 0))) > 0:
            seen.append(status)
        return bool(seen) or status.get("phase") in FINAL

    wait_until(partial_progress, "a Pulling status with byte progress")
    rig.fault_proxy.pass_through()
    final = rig.wait_final(pull)

    assert seen, f"no byte progress seen before {final}"
    layer_bytes = sum(layer.size for layer in pushed.image.layers)
    assert 0 < int(str(seen[0]["pulledBytes"])) <= int(str(seen[0]["totalBytes"])) <= layer_bytes
    assert 0 <= int(str(seen[0].get("progress", 0))) < 100
    assert final["phase"] == "Succeeded"
    assert final["progress"] == 100


def test_final_status_written_by_another_component_is_adopted(rig: FaultRig) -> None:
    pull = rig.start_pull(rig.containerd_nodes.b, rig.unique_image(total_bytes=4 << 20))
    pulling = rig.wait_in_flight(pull)

    # nodeimage_sync fails the tag on its response timeout, writing the status as it would.
    failed = {**pulling, "phase": "Failed", "completionTime": pulling["startTime"], "message": "node timed out"}
    status = {"desired": 1, "failed": 1, "pulling": 0, "imageStatuses": {pull.entry.image: {"tags": [failed]}}}
    rig.node_images.api.patch_status(resources.NODE_IMAGES, pull.node_image, {"status": status})

    wait_until(lambda: pull.puller.images.in_flight == 0, "the puller to stop its pull")
    rig.fault_proxy.pass_through()
    final = rig.wait_final(pull)
    assert (final["phase"], final["message"]) == ("Failed", "node timed out")
    assert pull.puller.app.workers.versions() == {}


def test_many_changes_go_out_in_few_status_writes(rig: FaultRig) -> None:
    pushed = [rig.unique_image(total_bytes=16 << 10, layers=1) for _ in range(10)]
    name, puller = rig.node_with_puller(rig.containerd_nodes.a, status_write_qps=0.2, status_write_burst=1, workers=10)
    for each in pushed:
        image, tag = imageref.parse(each.reference).nodeimage_entry()
        rig.node_images.set_image(name, image, [{"tag": tag}])

    wait_until(lambda: (rig.node_images.get(name).get("status") or {}).get("succeeded") == 10, "10 succeeded tags")

    # 10 tags with 3 phase changes each went out in a handful of writes.
    assert puller.app.writer.writes < 15
