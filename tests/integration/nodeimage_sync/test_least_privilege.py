"""nodeimage_sync does its whole job as its own ServiceAccount, with only the RBAC that deploy/ grants it."""

from __future__ import annotations

import kubernetes.client
import pytest

from localcluster.process import wait_until
from services.nodeimage_sync.app import App
from services.shared.kube import resources
from tests.integration.nodeimage_sync.conftest import SyncHarness
from tests.integration.nodeimage_sync.test_maintenance import a_tag, images, owner, set_images, status_tag
from tests.support import deploy_manifests

pytestmark = pytest.mark.integration

NAMESPACE = "prepull-system"
SERVICE_ACCOUNT = "prepull-nodeimage-sync"


def test_runs_as_its_service_account_with_the_deployed_rbac(sync: SyncHarness):
    deploy_manifests.apply_deploy(sync.control_plane)
    core = kubernetes.client.CoreV1Api(sync.admin)
    request = {"spec": {"expirationSeconds": 3600}}
    token = core.create_namespaced_service_account_token(SERVICE_ACCOUNT, NAMESPACE, request).status.token
    # Leader election is off here: its Lease permissions are a separate row of the RBAC table.
    app = App(
        sync.settings(leader_election=sync.election(enabled=False), response_timeout=2.0),
        api_client=sync.control_plane.api_client_for_token(token),
    )
    sync.apps.append(app)
    app.start()
    wait_until(app.is_leader, timeout=60, what="the service to sync its caches as its ServiceAccount")

    node = sync.register_node({"zone": "a"})
    sync.wait_for(lambda: sync.nodeimage(node), "NodeImage created")
    job = sync.create_job("rbac")
    gone = sync.create_job("rbac-gone")
    set_images(
        sync,
        node,
        {
            "nginx": {"tags": [a_tag("1.25", owners=[owner(job)])]},
            "redis": {"tags": [a_tag("7", owners=[owner(gone)])]},
        },
    )
    sync.api.delete(resources.IMAGE_PULL_JOBS, "rbac-gone", namespace=sync.namespace)
    sync.wait_for(lambda: "redis" not in images(sync.nodeimage(node)), "spec written")
    sync.wait_for(lambda: status_tag(sync.nodeimage(node)).get("phase") == "Failed", "status written", 30)
    sync.wait_for(lambda: app.events.counters.created >= 2, "events written")
    assert app.events.counters.failed == 0
    forbidden = app.metrics.registry.get_sample_value("prepull_nodeimage_sync_api_errors_total", {"error": "Forbidden"})
    assert not forbidden
    kubernetes.client.CoreV1Api(sync.admin).delete_node(node)
    sync.wait_for(lambda: sync.nodeimage(node) is None, "NodeImage deleted")
