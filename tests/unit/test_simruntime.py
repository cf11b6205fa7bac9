"""`localcluster.simruntime`: the in-process runtime of a simulated node, bare (as the benchmarks run it) and
journaled (as the fault tests do), and its fault files: a failing registry and a stopped containerd, each while
its file exists. What the puller above sees is what `cri.CriImageService` raises for the same status over gRPC."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from localcluster.process import wait_until
from localcluster.simruntime import ALL_NODES_FAIL, HELD_POLL_SECONDS, JournaledImages, PullJournal, SimulatedImages
from services.puller import cri
from services.puller.simcri import SimulatedRuntime, SimulationSettings

REFERENCE = "sim.registry.test/team/app:v1"


def images_of(tmp_path: Path, node: str = "node-1", latency: float = 0.0) -> JournaledImages:
    return JournaledImages(PullJournal(tmp_path, node), SimulationSettings(pull_latency=latency))


def bare_images(latency: float = 0.0) -> SimulatedImages:
    return SimulatedImages(SimulatedRuntime(SimulationSettings(pull_latency=latency, image_size=1000)))


def pull(
    images: SimulatedImages,
    *,
    reference: str = REFERENCE,
    timeout: float = 30.0,
    cancel: threading.Event | None = None,
) -> str:
    return images.pull_image(reference, auth=None, sandbox=None, timeout=timeout, cancel=cancel or threading.Event())


def pull_in_background(images: SimulatedImages, cancel: threading.Event) -> tuple[threading.Thread, list[object]]:
    """A pull on its own thread; the list receives its image id or the error it raised."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(pull(images, timeout=60.0, cancel=cancel))
        except cri.RuntimeError_ as error:
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_bare_runtime_holds_what_it_pulled_under_the_id_the_journaled_one_gives(tmp_path: Path) -> None:
    images = bare_images()
    image_id = pull(images)
    assert image_id == pull(images_of(tmp_path))
    status = images.image_status(REFERENCE)
    assert status is not None and status.id == image_id
    assert [image.id for image in images.list_images()] == [image_id]
    assert [usage.used_bytes for usage in images.image_fs_info()] == [1000]
    assert images.version().runtime_api_version == "v1"
    assert list(tmp_path.iterdir()) == [tmp_path / "node-1.pulls"], "only the journaled node wrote a file"


def test_a_bare_pull_longer_than_its_timeout_fails_at_once() -> None:
    with pytest.raises(cri.PullFailed, match="timed out"):
        pull(bare_images(latency=30.0), timeout=1.0)


def test_a_bare_pull_cancelled_in_flight_ends_cancelled_and_holds_nothing() -> None:
    images, cancel = bare_images(latency=30.0), threading.Event()
    puller, outcome = pull_in_background(images, cancel)
    wait_until(lambda: images.runtime.in_flight == 1, timeout=10, what="the pull to start")
    cancel.set()
    puller.join(timeout=10)
    assert not puller.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], cri.PullCancelled), outcome
    assert images.list_images() == []


def test_a_missing_image_fails_as_containerd_reports_not_found() -> None:
    with pytest.raises(cri.PullFailed, match="not found"):
        pull(bare_images(), reference="sim.registry.test/missing/app:v1")


def test_a_journaled_runtime_started_again_holds_the_images_pulled_before(tmp_path: Path) -> None:
    image_id = pull(images_of(tmp_path))
    restarted = images_of(tmp_path)
    status = restarted.image_status(REFERENCE)
    assert status is not None and status.id == image_id
    assert restarted.journal.attempts()[REFERENCE] == 1


def test_a_held_pull_waits_until_the_hold_is_released(tmp_path: Path) -> None:
    images = images_of(tmp_path)
    images.journal.hold()
    puller, outcome = pull_in_background(images, threading.Event())
    wait_until(lambda: images.journal.in_flight(REFERENCE), timeout=10, what="the pull to start")
    puller.join(timeout=HELD_POLL_SECONDS * 4)
    assert puller.is_alive() and outcome == [], "a held pull does not finish"
    images.journal.release()
    puller.join(timeout=10)
    assert not puller.is_alive()
    assert len(outcome) == 1 and str(outcome[0]).startswith("sha256:"), outcome
    assert images.journal.pulled() == [REFERENCE]


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
    puller, outcome = pull_in_background(images, threading.Event())
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
