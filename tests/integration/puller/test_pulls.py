"""The puller against the real apiserver and containerd: tag entries written like the scheduler's become pulls."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import generate_latest

from localcluster.images import PushedImage
from services.shared.api import imageref
from tests.integration.puller.conftest import NodeImages, PullerFactory
from tests.support.node_fixtures import ContainerdNodes

pytestmark = pytest.mark.integration

FINAL = ("Succeeded", "Failed")


def entry(reference: str) -> tuple[str, str]:
    """The NodeImage key and tag of an image reference."""
    return imageref.parse(reference).nodeimage_entry()


def test_pull_by_tag_succeeds_with_image_id(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
) -> None:
    pushed = unique_image()
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.a)
    image, tag = entry(pushed.reference)
    node_images.set_image(name, image, [{"tag": tag, "imagePullPolicy": "IfNotPresent"}])

    status = node_images.wait_for(name, image, tag, FINAL)

    assert status["phase"] == "Succeeded", status
    assert status["imageID"] == f"{image}@{pushed.image_id}"
    assert status["progress"] == 100
    assert status["startTime"] and status["completionTime"]
    assert puller.images.pulls_of(imageref.parse(pushed.reference).pullable()) == 1
    whole = node_images.get(name)["status"]
    assert (whole["desired"], whole["succeeded"], whole["failed"]) == (1, 1, 0)
    metrics = generate_latest(puller.app.metrics.registry).decode()
    assert 'prepull_puller_pulls_total{result="succeeded"} 1.0' in metrics
    assert "prepull_puller_status_writes_total" in metrics
    event = node_images.wait_for_event(name, "PullImageSucceed")
    assert event["type"] == "Normal"
    assert event["message"].startswith(f"Image {image}:{tag}, elapsedTime ")


def test_pull_by_digest_uses_at_sign(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
) -> None:
    pushed = unique_image()
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.a)
    image, tag = entry(pushed.digest_reference)
    assert tag == pushed.manifest_digest
    node_images.set_image(name, image, [{"tag": tag}])

    status = node_images.wait_for(name, image, tag, FINAL)

    assert status["phase"] == "Succeeded", status
    assert puller.images.pull_calls == [f"{image}@{pushed.manifest_digest}"]
    assert status["imageID"] == f"{image}@{pushed.image_id}"


def test_if_not_present_skips_pull_when_present_and_always_pulls_again(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
) -> None:
    pushed = unique_image()
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.a)
    image, tag = entry(pushed.reference)
    pullable = imageref.parse(pushed.reference).pullable()
    node_images.set_image(name, image, [{"tag": tag, "imagePullPolicy": "Always"}])
    assert node_images.wait_for(name, image, tag, FINAL)["phase"] == "Succeeded"
    assert puller.images.pulls_of(pullable) == 1

    # Present now: IfNotPresent at a new version succeeds without calling PullImage.
    node_images.set_image(name, image, [{"tag": tag, "imagePullPolicy": "IfNotPresent", "version": 1}])
    present = node_images.wait_for(name, image, tag, FINAL, version=1)
    assert present["phase"] == "Succeeded", present
    assert present["imageID"] == f"{image}@{pushed.image_id}"
    assert puller.images.pulls_of(pullable) == 1

    # Always pulls again even though the image is present.
    node_images.set_image(name, image, [{"tag": tag, "imagePullPolicy": "Always", "version": 2}])
    assert node_images.wait_for(name, image, tag, FINAL, version=2)["phase"] == "Succeeded"
    assert puller.images.pulls_of(pullable) == 2


def test_digest_present_is_not_pulled_again_with_if_not_present(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
) -> None:
    pushed = unique_image()
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.b)
    image, digest = entry(pushed.digest_reference)
    node_images.set_image(name, image, [{"tag": digest, "imagePullPolicy": "Always"}])
    assert node_images.wait_for(name, image, digest, FINAL)["phase"] == "Succeeded"

    node_images.set_image(name, image, [{"tag": digest, "imagePullPolicy": "IfNotPresent", "version": 1}])
    assert node_images.wait_for(name, image, digest, FINAL, version=1)["phase"] == "Succeeded"
    assert len(puller.images.pull_calls) == 1


def test_image_not_found_fails_after_all_attempts(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
) -> None:
    pushed = unique_image()
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.a)
    image, _ = entry(pushed.reference)
    policy = {"backoffLimit": 2, "ttlSecondsAfterFinished": 60}
    node_images.set_image(name, image, [{"tag": "no-such-tag", "pullPolicy": policy}])

    status = node_images.wait_for(name, image, "no-such-tag", FINAL)

    assert status["phase"] == "Failed"
    assert "not found" in status["message"], status
    assert status["completionTime"]
    assert puller.images.pulls_of(f"{image}:no-such-tag") == 3
    assert node_images.get(name)["status"]["failed"] == 1
    event = node_images.wait_for_event(name, "PullImageFailed")
    assert event["type"] == "Warning"
    assert event["message"] == f"Image {image}:no-such-tag {status['message']}"
