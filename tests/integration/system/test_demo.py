"""`make demo` in its tear-down mode, as CI runs it: exit 0, the promised output, and nothing left running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from localcluster import cluster
from localcluster.process import pid_alive

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
DEMO_TIMEOUT = 600


def recorded_pids(state_dir: Path) -> list[int]:
    """Every PID the demo's state files name: the cluster, the attached processes, the services, the receiver."""
    state = json.loads((state_dir / cluster.STATE_FILE).read_text())
    services = json.loads((state_dir / "services" / "services.json").read_text())
    demo = json.loads((state_dir / "demo.json").read_text())
    return [*cluster.recorded_pids(state), *(s["pid"] for s in services.values()), demo["receiver_pid"]]


def test_demo_in_teardown_mode_reaches_every_outcome_shows_results_and_leaves_nothing_running(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    state_dir = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "-m", "localcluster", "--state-dir", str(state_dir), "demo", "--teardown"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "every job reached its expected outcome" in output

    # The live view, in its line-per-change form (stdout is a pipe here).
    assert "all outcomes reached" in output
    assert "ipj/big-model-on-general" in output
    # The final `kubectl get ipj,ilpj,ni` tables.
    for row in (
        "imagepulljob.prepull.io/big-model-on-general",
        "imagepulljob.prepull.io/hello-everywhere",
        "imagelistpulljob.prepull.io/private-images",
        "nodeimage.prepull.io/node-1",
    ):
        assert row in output, row
    # The waterfall of the selector job's trace: one section per node it pulled on.
    trace = output.split("prepull trace ipj/big-model-on-general", 1)[1]
    assert "[node-1]" in trace and "[node-3]" in trace, trace[:2000]
    # How to go on.
    assert f"export KUBECONFIG={state_dir}" in output
    assert "make cluster-down" in output

    pids = recorded_pids(state_dir)
    assert len(pids) >= 12, pids
    assert [pid for pid in pids if pid_alive(pid)] == []
    state = json.loads((state_dir / cluster.STATE_FILE).read_text())
    assert state["registries"]["auth"]["password"] not in output
