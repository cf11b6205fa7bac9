"""`make cluster-up` / `make cluster-down` as a user runs them: a long-lived cluster in its own processes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from localcluster import binaries, cluster
from localcluster.process import pid_alive
from services.shared.gen.cri import api_pb2, api_pb2_grpc

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def run_cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localcluster", "--state-dir", str(state_dir), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def cluster_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state_dir = Path(tmp_path_factory.mktemp("cli", numbered=True))
    first = run_cli(state_dir, "up", "--nodes", "3")
    assert first.returncode == 0, first.stdout + first.stderr
    yield state_dir
    run_cli(state_dir, "down")


def test_up_prints_kubeconfig_and_kubectl_lists_the_nodes(cluster_dir: Path) -> None:
    state = json.loads((cluster_dir / "cluster.json").read_text())
    kubectl = binaries.binary("kubectl")
    listed = subprocess.run(
        [str(kubectl), "--kubeconfig", state["kubeconfig"], "get", "nodes", "-o", "name"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.split() == ["node/node-1", "node/node-2", "node/node-3"]
    status = run_cli(cluster_dir, "status")
    assert f"export KUBECONFIG={state['kubeconfig']}" in status.stdout
    for node in state["nodes"]:
        assert node["cri_socket"] in status.stdout
    assert state["registries"]["auth"]["password"] not in status.stdout


def test_each_node_socket_answers_cri(cluster_dir: Path) -> None:
    state = json.loads((cluster_dir / "cluster.json").read_text())
    for node in state["nodes"]:
        with grpc.insecure_channel(f"unix://{node['cri_socket']}") as channel:
            version = api_pb2_grpc.RuntimeServiceStub(channel).Version(api_pb2.VersionRequest(), timeout=10)
        assert version.runtime_name == "containerd"


def test_token_files_are_written_and_kept_by_a_refresher(cluster_dir: Path) -> None:
    state = json.loads((cluster_dir / "cluster.json").read_text())
    assert pid_alive(state["token_refresher_pid"])
    for node in state["nodes"]:
        for path in node["token_files"].values():
            assert Path(path).read_text().count(".") == 2, "a JWT has three dot-separated parts"


def test_second_up_reuses_the_running_cluster(cluster_dir: Path) -> None:
    before = json.loads((cluster_dir / "cluster.json").read_text())
    again = run_cli(cluster_dir, "up")
    assert again.returncode == 0, again.stderr
    assert "re-using the running local cluster" in again.stdout
    after = json.loads((cluster_dir / "cluster.json").read_text())
    assert cluster.recorded_pids(after) == cluster.recorded_pids(before)


def test_down_stops_every_recorded_process(tmp_path_factory: pytest.TempPathFactory) -> None:
    state_dir = Path(tmp_path_factory.mktemp("cli-down", numbered=True))
    assert run_cli(state_dir, "up", "--nodes", "1").returncode == 0
    pids = cluster.recorded_pids(json.loads((state_dir / "cluster.json").read_text()))
    assert len(pids) == 7  # refresher, 1 containerd, controller manager, apiserver, etcd, 2 registries
    assert all(pid_alive(pid) for pid in pids)
    down = run_cli(state_dir, "down")
    assert down.returncode == 0, down.stderr
    assert not [pid for pid in pids if pid_alive(pid)]
    assert run_cli(state_dir, "status").returncode == 1
