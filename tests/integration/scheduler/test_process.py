"""`prepull-scheduler` as a process: flags, probes, metrics, graceful stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import urllib.request
from pathlib import Path

import pytest

from localcluster.controlplane import ControlPlane
from localcluster.process import ManagedProcess, free_port, wait_until

pytestmark = pytest.mark.integration


def _get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.status, response.read().decode()


def test_process_serves_probes_and_metrics_and_stops_on_sigterm(
    control_plane: ControlPlane, prepull_crds: tuple[str, ...], kube_namespace: str, tmp_path: Path
) -> None:
    metrics_port, health_port, grpc_port = free_port(), free_port(), free_port()
    process = ManagedProcess(
        name="scheduler",
        argv=[
            sys.executable,
            "-m",
            "services.scheduler",
            f"--kubeconfig={control_plane.kubeconfig}",
            f"--grpc-address=127.0.0.1:{grpc_port}",
            f"--metrics-address=127.0.0.1:{metrics_port}",
            f"--health-address=127.0.0.1:{health_port}",
            f"--watch-namespace={kube_namespace}",
            f"--leader-elect-resource-namespace={kube_namespace}",
            "--leader-elect-retry-period=0.5s",
        ],
        log_path=tmp_path / "scheduler.log",
        cwd=Path(__file__).resolve().parents[3],
    )
    process.start()
    try:
        wait_until(lambda: _get(health_port, "/readyz")[0] == 200, timeout=60, what="readiness")
        wait_until(
            lambda: "prepull_scheduler_leader 1.0" in _get(metrics_port, "/metrics")[1], timeout=60, what="leadership"
        )
        assert process.pid is not None
        os.kill(process.pid, signal.SIGTERM)
        wait_until(lambda: process.exited_with() is not None, timeout=30, what="exit after SIGTERM")
        assert process.exited_with() == 0, process.log_tail()
        assert "released Lease" in process.log_tail(100)
    finally:
        process.stop()
