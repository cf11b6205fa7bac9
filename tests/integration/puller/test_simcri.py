"""The simulated CRI runtime: the real CRI adapter talks to it over a unix socket, and the real puller scales on it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from localcluster.controlplane import ControlPlane
from services.puller import app, cri, simcri
from services.shared.kube import client, kubeapi
from tests.integration.puller.conftest import NodeImages, puller_settings, wait_until

pytestmark = pytest.mark.integration

FINAL = ("Succeeded", "Failed")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[simcri.SimulatedRuntime, str]]:
    runtime = simcri.SimulatedRuntime(simcri.SimulationSettings(pull_latency=0.3, image_size=1000, seed=1))
    target = f"unix://{tmp_path / 'sim.sock'}"
    server = simcri.serve(target, runtime)
    yield runtime, target
    server.stop(0).wait()


def test_adapter_pulls_and_finds_images(sim: tuple[simcri.SimulatedRuntime, str]) -> None:
    runtime, target = sim
    images = cri.CriImageService(target)
    assert images.version().runtime_name == simcri.RUNTIME_NAME
    assert images.image_status("reg:5000/a/b:v1") is None

    image_id = images.pull_image("reg:5000/a/b:v1", auth=None, sandbox=None, timeout=10, cancel=threading.Event())

    found = images.image_status("reg:5000/a/b:v1")
    assert found is not None and found.id == image_id
    assert [image.id for image in images.list_images()] == [image_id]
    assert images.image_fs_info() == [cri.FilesystemUsage(mountpoint=runtime.settings.mountpoint, used_bytes=1000)]


def test_adapter_reports_failures_timeouts_and_cancellation(
    sim: tuple[simcri.SimulatedRuntime, str], tmp_path: Path
) -> None:
    _, target = sim
    images = cri.CriImageService(target)
    with pytest.raises(cri.PullFailed, match="not found"):
        images.pull_image("reg:5000/missing/x:v1", auth=None, sandbox=None, timeout=10, cancel=threading.Event())
    with pytest.raises(cri.PullFailed, match=r"timed out after 0\.1s"):
        images.pull_image("reg:5000/a/slow:v1", auth=None, sandbox=None, timeout=0.1, cancel=threading.Event())
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(cri.PullCancelled):
        images.pull_image("reg:5000/a/c:v1", auth=None, sandbox=None, timeout=10, cancel=cancel)
    assert images.image_status("reg:5000/a/c:v1") is None

    failing = simcri.SimulatedRuntime(simcri.SimulationSettings(pull_latency=0, failure_rate=1.0))
    failing_target = f"unix://{tmp_path / 'failing.sock'}"
    server = simcri.serve(failing_target, failing)
    try:
        with pytest.raises(cri.PullFailed, match="simulated registry failure"):
            cri.CriImageService(failing_target).pull_image(
                "reg:5000/a/b:v1", auth=None, sandbox=None, timeout=10, cancel=threading.Event()
            )
    finally:
        server.stop(0).wait()


def test_puller_on_the_simulated_runtime_keeps_its_worker_limit(
    control_plane: ControlPlane, node_images: NodeImages, sim: tuple[simcri.SimulatedRuntime, str]
) -> None:
    runtime, target = sim
    name = node_images.create()
    settings = replace(puller_settings(name, target), workers=4)
    puller = app.PullerApp(
        settings,
        api=kubeapi.KubeApi(client.from_kubeconfig(control_plane.kubeconfig)),
        images=cri.CriImageService(target),
    )
    puller.start()
    try:
        images = [f"reg.example:5000/scale/image-{index:02d}" for index in range(20)]
        node_images.set_images(name, {image: [{"tag": "v1"}] for image in images})
        wait_until(lambda: (node_images.get(name).get("status") or {}).get("succeeded") == 20, "20 succeeded pulls")
    finally:
        puller.stop()
    assert runtime.pulls == 20
    assert runtime.max_in_flight == 4
