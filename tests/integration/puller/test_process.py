"""`prepull-puller` as a process: flags in, pulls done, health and metrics served, clean exit on SIGTERM."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from localcluster.controlplane import ControlPlane
from localcluster.images import PushedImage
from localcluster.process import ManagedProcess, free_port
from services.shared.api import imageref
from tests.integration.puller.conftest import NodeImages, wait_until
from tests.support.node_fixtures import ContainerdNodes

pytestmark = pytest.mark.integration


def test_puller_process_pulls_and_serves_health_and_metrics(
    control_plane: ControlPlane,
    node_images: NodeImages,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    name = node_images.create()
    grpc_port, http_port = free_port(), free_port()
    process = ManagedProcess(
        name="puller",
        argv=[
            sys.executable,
            "-m",
            "services.puller",
            f"--kubeconfig={control_plane.kubeconfig}",
            f"--cri-socket={containerd_nodes.a.cri_target}",
            f"--grpc-address=127.0.0.1:{grpc_port}",
            f"--metrics-address=127.0.0.1:{http_port}",
            f"--health-address=127.0.0.1:{http_port}",
            "--min-free-disk=0",
        ],
        env={"NODE_NAME": name},
        log_path=tmp_path / "puller.log",
    )
    process.start()
    try:
        pushed = unique_image()
        image, tag = imageref.parse(pushed.reference).nodeimage_entry()
        node_images.set_image(name, image, [{"tag": tag}])
        status = node_images.wait_for(name, image, tag, ("Succeeded", "Failed"))
        assert status["phase"] == "Succeeded", process.log_tail()

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=5) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_until(ready, "/readyz to answer 200")
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as response:
            assert b'prepull_puller_pulls_total{result="succeeded"} 1.0' in response.read()
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        process.stop()
    assert "Traceback" not in process.log_tail(200), process.log_tail(200)
