"""nodeimage_sync survives an apiserver restart without restarting itself (own module: it disturbs others)."""

from __future__ import annotations

import kubernetes.client
import pytest

from services.shared.kube import leaderelection
from tests.integration.nodeimage_sync.conftest import SyncHarness

pytestmark = pytest.mark.integration


def test_recovers_after_the_apiserver_restarts(sync: SyncHarness):
    # A lease longer than the restart takes, so the leader keeps leading (with the defaults, 15 s/10 s, a
    # longer outage makes it step down and exit, as client-go controllers do, and its Pod restarts).
    timing = leaderelection.ElectionSettings(lease_duration=60.0, renew_deadline=45.0, retry_period=0.5)
    app = sync.start(leader_election=sync.election(timing=timing))
    before = sync.register_node({"zone": "a"})
    sync.wait_for(lambda: sync.nodeimage(before), "NodeImage created before the restart")

    sync.control_plane.restart_apiserver()

    after = sync.register_node()
    sync.wait_for(lambda: sync.nodeimage(after), "NodeImage created after the restart", 120)
    kubernetes.client.CoreV1Api(sync.admin).patch_node(before, {"metadata": {"labels": {"zone": "b"}}})
    sync.wait_for(lambda: (sync.nodeimage(before) or {})["metadata"]["labels"].get("zone") == "b", "labels synced", 120)
    assert app.is_leader() and not app.stopped.is_set(), "the service restarted or stepped down"
