"""Restarts and leader changes of nodeimage_sync: nothing lost or duplicated, pending timers still fire."""

from __future__ import annotations

import urllib.request

import grpc
import kubernetes.client
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from localcluster.process import wait_until
from services.nodeimage_sync.app import App
from services.shared import observability
from services.shared.gen.prepull.v1 import inventory_pb2, inventory_pb2_grpc
from services.shared.kube import resources
from tests.integration.nodeimage_sync.conftest import SyncHarness
from tests.integration.nodeimage_sync.test_maintenance import (
    a_tag,
    images,
    now_text,
    owner,
    set_images,
    status_tag,
    tags,
)

pytestmark = pytest.mark.integration


def uid_of(sync: SyncHarness, name: str) -> str:
    return str((sync.nodeimage(name) or {}).get("metadata", {}).get("uid", ""))


def grpc_health(app: App) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return int(answer.status)


def http_ready(app: App) -> int:
    port = app.http.port(observability.READINESS_PATH)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_restart_loses_and_duplicates_nothing_and_pending_timers_fire(sync: SyncHarness):
    first = sync.start(response_timeout=8.0)
    kept = sync.register_node({"zone": "a"})
    doomed = sync.register_node()
    sync.wait_for(lambda: sync.nodeimage(kept) and sync.nodeimage(doomed), "NodeImages created")
    kept_uid = uid_of(sync, kept)
    job = sync.create_job("deleted-while-down")
    live_job = sync.create_job("still-there")
    set_images(
        sync,
        kept,
        {
            "nginx": {"tags": [a_tag("1.25", owners=[owner(job)]), a_tag("1.26", owners=[owner(live_job)])]},
            "redis": {"tags": [a_tag("7", ttlSecondsAfterFinished=4)]},
            "busybox": {"tags": [a_tag("1")]},
        },
    )
    finished = {"tag": "7", "phase": "Succeeded", "version": 0, "completionTime": now_text()}
    sync.api.patch_status(
        resources.NODE_IMAGES, kept, {"status": {"desired": 3, "imageStatuses": {"redis": {"tags": [finished]}}}}
    )
    sync.stop(first)

    sync.api.delete(resources.IMAGE_PULL_JOBS, "deleted-while-down", namespace=sync.namespace)
    kubernetes.client.CoreV1Api(sync.admin).delete_node(doomed)
    newcomer = sync.register_node()

    sync.start(response_timeout=8.0)
    sync.wait_for(lambda: tags(sync.nodeimage(kept)) == ["1.26"], "tag of the job deleted while down removed", 30)
    sync.wait_for(lambda: "redis" not in images(sync.nodeimage(kept)), "pending TTL fired after the restart", 30)
    sync.wait_for(
        lambda: status_tag(sync.nodeimage(kept), "busybox", "1").get("phase") == "Failed",
        "pending response timeout fired after the restart",
        30,
    )
    sync.wait_for(lambda: sync.nodeimage(doomed) is None, "NodeImage of the Node deleted while down removed")
    sync.wait_for(lambda: sync.nodeimage(newcomer), "NodeImage of the Node added while down created")
    assert uid_of(sync, kept) == kept_uid, "the surviving NodeImage was recreated"
    listed = sync.api.list(resources.NODE_IMAGES, label_selector=sync.selector).items
    assert sorted(n["metadata"]["name"] for n in listed) == sorted([kept, newcomer])


def test_standby_is_not_ready_until_it_leads(sync: SyncHarness):
    leader = sync.start()
    standby = sync.start(wait_leading=False)
    assert http_ready(leader) == 200
    assert grpc_health(leader) == health_pb2.HealthCheckResponse.SERVING
    assert not standby.is_leader()
    assert http_ready(standby) == 503
    assert grpc_health(standby) == health_pb2.HealthCheckResponse.NOT_SERVING
    with grpc.insecure_channel(f"127.0.0.1:{standby.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            inventory_pb2_grpc.NodeInventoryStub(channel).ListNodes(inventory_pb2.ListNodesRequest(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

    sync.stop(leader)
    wait_until(standby.is_leader, timeout=60, what="the standby to take over")
    assert http_ready(standby) == 200
    assert grpc_health(standby) == health_pb2.HealthCheckResponse.SERVING
    node = sync.register_node()
    sync.wait_for(lambda: sync.nodeimage(node), "the new leader creates NodeImages")


def test_metrics_are_exported(sync: SyncHarness):
    app = sync.start()
    node = sync.register_node()
    sync.wait_for(lambda: sync.nodeimage(node), "NodeImage created")
    port = app.http.port(observability.METRICS_PATH)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'prepull_nodeimage_sync_reconciles_total{result="ok"}' in text
    assert 'prepull_nodeimage_sync_nodeimage_writes_total{action="create"} 1.0' in text
    assert "prepull_nodeimage_sync_queue_depth" in text
    assert "prepull_nodeimage_sync_leader 1.0" in text


def test_losing_the_lease_ends_readiness_and_the_service(sync: SyncHarness):
    app = sync.start()
    lease = app.settings.leader_election.resource_name
    taken = {
        "spec": {
            "holderIdentity": "intruder",
            "leaseDurationSeconds": 600,
            "renewTime": now_text().replace("Z", ".000000Z"),
            "acquireTime": now_text().replace("Z", ".000000Z"),
        }
    }
    sync.api.patch(resources.LEASES, lease, taken, namespace=sync.namespace)
    wait_until(app.stopped.is_set, timeout=60, what="the service to give up after losing its Lease")
    assert not app.is_leader()
    assert grpc_health(app) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert http_ready(app) == 503
