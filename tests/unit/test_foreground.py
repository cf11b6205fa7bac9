"""`make run`: which cluster the services run against, and how their logs reach the terminal."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import yaml

from localcluster import foreground
from localcluster.process import ManagedProcess
from localcluster.system import ServiceProcess


def write_local_state(state_dir: Path) -> dict[str, object]:
    state: dict[str, object] = {
        "state_dir": str(state_dir),
        "kubeconfig": str(state_dir / "admin.kubeconfig"),
        "nodes": [],
        "token_refresher_pid": os.getpid(),  # a live PID: the cluster counts as running
    }
    (state_dir / "cluster.json").write_text(json.dumps(state))
    return state


def test_the_running_local_cluster_is_used_without_kubeconfig_or_when_it_names_it(tmp_path: Path) -> None:
    state = write_local_state(tmp_path)
    assert foreground.target_cluster(tmp_path, {}) == state
    assert foreground.target_cluster(tmp_path, {"KUBECONFIG": str(state["kubeconfig"])}) == state


def test_another_kubeconfig_gets_a_state_without_nodes(tmp_path: Path) -> None:
    write_local_state(tmp_path)
    other = tmp_path / "other.kubeconfig"
    other.write_text(yaml.safe_dump({"clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}]}))
    state = foreground.target_cluster(tmp_path, {"KUBECONFIG": str(other)})
    assert state["nodes"] == []
    assert state["server"] == "https://10.0.0.1:6443"
    assert state["state_dir"] != str(tmp_path), "its service kubeconfigs must not mix with the local cluster's"


def test_no_cluster_at_all_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="make cluster-up"):
        foreground.target_cluster(tmp_path, {})


def test_log_follower_prints_complete_new_lines_with_the_service_name(tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    process = ManagedProcess(name="scheduler", argv=["true"], log_path=log)
    services = {"scheduler": ServiceProcess(name="scheduler", process=process, grpc_port=1, health_port=2)}
    out = io.StringIO()
    follower = foreground.LogFollower(services, out=out)
    log.write_text("first\nsecond, half")
    follower.poll()
    with log.open("a") as handle:
        handle.write(" done\n")
    follower.poll()
    assert out.getvalue() == "scheduler | first\nscheduler | second, half done\n"
