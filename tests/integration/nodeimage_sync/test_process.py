"""The console script as a real process: JSON logs, a Lease while it runs, clean exit and release on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from localcluster.process import wait_until
from services.shared.kube import errors, resources
from tests.integration.nodeimage_sync.conftest import SyncHarness

pytestmark = pytest.mark.integration


def lease_holder(sync: SyncHarness, name: str) -> str | None:
    try:
        lease = sync.api.get(resources.LEASES, name, namespace=sync.namespace)
    except errors.NotFound:
        return None
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def test_sigterm_stops_cleanly_and_releases_the_lease(sync: SyncHarness, tmp_path: Path):
    lease = f"nodeimage-sync-{sync.run_id}"
    log_file = tmp_path / "stderr.log"
    argv = [
        sys.executable,
        "-m",
        "services.nodeimage_sync",
        f"--kubeconfig={sync.control_plane.kubeconfig}",
        "--grpc-address=127.0.0.1:0",
        "--metrics-address=127.0.0.1:0",
        "--health-address=127.0.0.1:0",
        f"--node-selector={sync.selector}",
        f"--leader-elect-resource-namespace={sync.namespace}",
        f"--leader-elect-resource-name={lease}",
        "--leader-elect-identity=process-under-test",
        "--creation-delay=1s",
        "--no-auth",
    ]
    with log_file.open("w") as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, cwd=Path(__file__).parents[3])
    try:
        wait_until(lambda: lease_holder(sync, lease) == "process-under-test", timeout=60, what="the Lease held")
        node = sync.register_node()
        sync.wait_for(lambda: sync.nodeimage(node), "NodeImage created by the process")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert lease_holder(sync, lease) == "", "the Lease was not released on SIGTERM"
    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    assert any("created NodeImage" in r.get("message", "") for r in records), log_file.read_text()[-2000:]
