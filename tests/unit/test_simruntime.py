"""The fault files of `localcluster.simruntime`: a failing registry and a stopped containerd, each while its file
exists; what the puller above sees is what `cri.CriImageService` raises for the same status over gRPC."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from localcluster.process import wait_until
from localcluster.simruntime import ALL_NODES_FAIL, JournaledImages, PullJournal
from services.puller import cri
from services.puller.simcri import SimulationSettings

REFERENCE = "sim.registry.test/team/app:v1"


def images_of(tmp_path: Path, node: str = "node-1", latency: float = 0.0) -> JournaledImages:
    return JournaledImages(PullJournal(tmp_path, node), SimulationSettings(pull_latency=latency))


def pull(images: JournaledImages, *, timeout: float = 30.0) -> str:
    return images.pull_image(REFERENCE, auth=None, sandbox=None, timeout=timeout, cancel=threading.Event())


def test_fail_file_fails_pulls_like_a_registry_answering_503_until_removed(tmp_path: Path) -> None:
    images = images_of(tmp_path)
    images.journal.fail_path.touch()
    with pytest.raises(cri.PullFailed, match=r"failed to resolve reference .*: unexpected status .* 503"):
        pull(images)
    images.journal.fail_path.unlink()
    assert pull(images).startswith("sha256:")
    assert (images.journal.attempts()[REFERENCE], images.journal.failures()[REFERENCE]) == (2, 1)
    assert images.journal.pulled() == [REFERENCE]


def test_the_all_nodes_fail_file_fails_every_node_of_the_directory(tmp_path: Path) -> None:
    first, second = images_of(tmp_path, "node-1"), images_of(tmp_path, "node-2")
    (tmp_path / ALL_NODES_FAIL).touch()
    for images in (first, second):
        with pytest.raises(cri.PullFailed, match="503 Service Unavailable"):
            pull(images)
    (tmp_path / ALL_NODES_FAIL).unlink()
    assert [pull(images).startswith("sha256:") for images in (first, second)] == [True, True]


def test_a_stopped_runtime_refuses_every_call_without_journaling_a_pull(tmp_path: Path) -> None:
    images = images_of(tmp_path)
    pull(images)
    images.journal.down_path.touch()
    calls: list[Callable[[], object]] = [
        images.list_images,
        images.image_fs_info,
        images.version,
        lambda: images.image_status(REFERENCE),
    ]
    for call in calls:
        with pytest.raises(cri.RuntimeUnavailable, match="Connection refused"):
            call()
    with pytest.raises(cri.RuntimeUnavailable, match="Connection refused"):
        pull(images)
    assert images.journal.attempts()[REFERENCE] == 1
    images.journal.down_path.unlink()
    assert images.image_status(REFERENCE) is not None, "images pulled before the stop are still there"


def test_a_pull_in_flight_when_the_runtime_stops_ends_unavailable(tmp_path: Path) -> None:
    images = images_of(tmp_path, latency=30.0)
    outcome: list[BaseException] = []

    def pull_recording_the_error() -> None:
        try:
            pull(images, timeout=60.0)
        except cri.RuntimeError_ as error:
            outcome.append(error)

    puller = threading.Thread(target=pull_recording_the_error)
    puller.start()
    wait_until(lambda: images.journal.in_flight(REFERENCE), timeout=10, what="the pull to start")
    images.journal.down_path.touch()
    puller.join(timeout=10)
    assert not puller.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], cri.RuntimeUnavailable), outcome
    assert images.journal.failures()[REFERENCE] == 1 and images.journal.pulled() == []


def test_removing_the_down_file_is_the_restart(tmp_path: Path) -> None:
    images = images_of(tmp_path, latency=0.01)
    images.journal.down_path.touch()
    with pytest.raises(cri.RuntimeUnavailable):
        pull(images)
    images.journal.down_path.unlink()
    assert pull(images).startswith("sha256:")
    assert images.journal.attempts()[REFERENCE] == 1
