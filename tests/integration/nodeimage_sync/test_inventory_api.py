"""NodeInventory over real gRPC, with real tokens: selector queries match kubectl, presence by tag and digest."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import kubernetes.client
import pytest

from localcluster import identity
from services.nodeimage_sync.app import App
from services.shared.api import constants
from services.shared.auth import metadata
from services.shared.gen.prepull.v1 import inventory_pb2, inventory_pb2_grpc, types_pb2
from tests.integration.nodeimage_sync.conftest import RUN_LABEL, SyncHarness
from tests.support.controlplane_fixtures import NodeIdentityFactory

pytestmark = pytest.mark.integration

PULLER = f"system:serviceaccount:{identity.PULLER_NAMESPACE}:{identity.PULLER_SERVICE_ACCOUNT}"
IMAGE_ID = "sha256:" + "1" * 64
MANIFEST = "sha256:" + "2" * 64
NGINX = types_pb2.Image(
    digest=IMAGE_ID,
    repo_tags=["docker.io/library/nginx:1.25"],
    repo_digests=[f"docker.io/library/nginx@{MANIFEST}"],
    size_bytes=1234,
)


@pytest.fixture
def reader_token(admin_api: kubernetes.client.ApiClient, kube_namespace: str) -> Iterator[str]:
    """A ServiceAccount token (audience prepull.io/inventory) whose RBAC allows reading NodeImages."""
    name = f"inventory-reader-{uuid.uuid4().hex[:6]}"
    core = kubernetes.client.CoreV1Api(admin_api)
    rbac = kubernetes.client.RbacAuthorizationV1Api(admin_api)
    core.create_namespaced_service_account(kube_namespace, {"metadata": {"name": name}})
    rule = {"apiGroups": [constants.GROUP], "resources": ["nodeimages"], "verbs": ["get", "list", "watch"]}
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": [rule]})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": kube_namespace}],
        }
    )
    yield _token(core, kube_namespace, name)
    rbac.delete_cluster_role_binding(name)
    rbac.delete_cluster_role(name)


def _token(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> str:
    request = {"spec": {"audiences": [constants.AUDIENCE_INVENTORY], "expirationSeconds": 600}}
    return str(core.create_namespaced_service_account_token(name, namespace, request).status.token)


def stub(app: App) -> tuple[grpc.Channel, inventory_pb2_grpc.NodeInventoryStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{app.grpc_port}")
    return channel, inventory_pb2_grpc.NodeInventoryStub(channel)


def auth(token: str) -> list[tuple[str, str]]:
    return [metadata.authorization_entry(token)]


def report(node: str, images: list[types_pb2.Image], sequence: int = 1) -> inventory_pb2.ReportImagesRequest:
    return inventory_pb2.ReportImagesRequest(
        node=node, sequence=sequence, snapshot=inventory_pb2.ImageSnapshot(images=images)
    )


def by_labels(selector: str) -> inventory_pb2.NodeSelector:
    return inventory_pb2.NodeSelector(label_selector=selector)


def test_list_nodes_by_selector_matches_kubectl(sync: SyncHarness, reader_token: str):
    app = sync.start(auth=True, puller_service_account=PULLER)
    made = [
        sync.register_node({"zone": zone, "disk": disk}) for zone, disk in (("a", "ssd"), ("a", "hdd"), ("b", "ssd"))
    ]
    sync.wait_for(lambda: all(sync.nodeimage(n) for n in made), "NodeImages created")
    channel, client = stub(app)
    with channel:
        for selector in ("zone=a", "zone=a,disk!=hdd", "disk in (ssd)", "!zone", "zone notin (a)"):
            full = f"{sync.selector},{selector}"
            listed = client.ListNodes(
                inventory_pb2.ListNodesRequest(selector=by_labels(full)), metadata=auth(reader_token)
            )
            kubectl = sync.control_plane.kubectl("get", "nodes", "-l", full, "-o", "name").stdout.split()
            assert [n.name for n in listed.nodes] == sorted(k.removeprefix("node/") for k in kubectl), selector
        named = client.ListNodes(
            inventory_pb2.ListNodesRequest(
                selector=inventory_pb2.NodeSelector(names=types_pb2.NodeNames(names=[made[2], "no-such-node"]))
            ),
            metadata=auth(reader_token),
        )
        assert [n.name for n in named.nodes] == [made[2]]
        assert dict(named.nodes[0].labels)["zone"] == "b"


def test_reports_are_found_by_tag_and_digest(
    sync: SyncHarness, reader_token: str, node_identity_factory: NodeIdentityFactory
):
    app = sync.start(auth=True, puller_service_account=PULLER)
    holder = node_identity_factory(labels={RUN_LABEL: sync.run_id})
    other = node_identity_factory(labels={RUN_LABEL: sync.run_id})
    silent = sync.register_node()
    sync.node_names += [holder.node, other.node]
    sync.wait_for(lambda: all(sync.nodeimage(n) for n in (holder.node, other.node, silent)), "NodeImages created")
    channel, client = stub(app)
    with channel:
        answer = client.ReportImages(
            report(holder.node, [NGINX]), metadata=auth(holder.token(identity.INVENTORY_AUDIENCE))
        )
        assert (answer.resync_required, answer.accepted_sequence) == (False, 1)
        client.ReportImages(report(other.node, []), metadata=auth(other.token(identity.INVENTORY_AUDIENCE)))
        for query in ("nginx:1.25", f"nginx@{MANIFEST}", IMAGE_ID, MANIFEST):
            found = client.WhichNodes(
                inventory_pb2.WhichNodesRequest(image=query, selector=by_labels(sync.selector)),
                metadata=auth(reader_token),
            )
            assert [p.node for p in found.present] == [holder.node], query
            assert list(found.absent) == [other.node], query
            assert list(found.unknown) == [silent], query
            assert found.present[0].image.size_bytes == 1234
        assert (
            client.WhichNodes(
                inventory_pb2.WhichNodesRequest(image="nginx"), metadata=auth(reader_token)
            ).normalized_image
            == "docker.io/library/nginx:latest"
        )
        delta = inventory_pb2.ReportImagesRequest(
            node=holder.node, sequence=5, delta=inventory_pb2.ImageDelta(removed_digests=[IMAGE_ID])
        )
        resync = client.ReportImages(delta, metadata=auth(holder.token(identity.INVENTORY_AUDIENCE)))
        assert (resync.resync_required, resync.accepted_sequence) == (True, 1)


def test_callers_are_authenticated_and_authorized(
    sync: SyncHarness,
    reader_token: str,
    node_identity_factory: NodeIdentityFactory,
    admin_api: kubernetes.client.ApiClient,
    kube_namespace: str,
):
    app = sync.start(auth=True, puller_service_account=PULLER)
    puller = node_identity_factory(labels={RUN_LABEL: sync.run_id})
    victim = sync.register_node()
    sync.node_names.append(puller.node)
    channel, client = stub(app)
    with channel:
        inventory_token = puller.token(identity.INVENTORY_AUDIENCE)
        with pytest.raises(grpc.RpcError) as other_node:
            client.ReportImages(report(victim, [NGINX]), metadata=auth(inventory_token))
        assert other_node.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as wrong_audience:
            client.ReportImages(
                report(puller.node, [NGINX]), metadata=auth(puller.token(identity.CREDENTIALS_AUDIENCE))
            )
        assert wrong_audience.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as anonymous:
            client.ListNodes(inventory_pb2.ListNodesRequest())
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as reader_reports:
            client.ReportImages(report(puller.node, [NGINX]), metadata=auth(reader_token))
        assert reader_reports.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # A ServiceAccount of its own, bound to nothing: whatever RBAC other tests applied, it may not read.
        core = kubernetes.client.CoreV1Api(admin_api)
        nobody = f"no-rbac-{uuid.uuid4().hex[:6]}"
        core.create_namespaced_service_account(kube_namespace, {"metadata": {"name": nobody}})
        with pytest.raises(grpc.RpcError) as no_rbac:
            client.WhichNodes(
                inventory_pb2.WhichNodesRequest(image="nginx"), metadata=auth(_token(core, kube_namespace, nobody))
            )
        assert no_rbac.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as bad_selector:
            client.ListNodes(
                inventory_pb2.ListNodesRequest(selector=by_labels("zone in (")), metadata=auth(reader_token)
            )
        assert bad_selector.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_watch_nodes_streams_the_selected_set(sync: SyncHarness, reader_token: str):
    app = sync.start(auth=True, puller_service_account=PULLER)
    first = sync.register_node({"zone": "a"})
    sync.wait_for(lambda: sync.nodeimage(first), "NodeImage created")
    channel, client = stub(app)
    with channel:
        events = client.WatchNodes(
            inventory_pb2.WatchNodesRequest(selector=by_labels(f"{sync.selector},zone=a")),
            metadata=auth(reader_token),
            timeout=120,
        )
        received = next(events)
        assert (received.type, received.node.name) == (inventory_pb2.NodeEvent.ADDED, first)
        assert next(events).type == inventory_pb2.NodeEvent.SYNCED
        second = sync.register_node({"zone": "a"})
        added = next(events)
        assert (added.type, added.node.name) == (inventory_pb2.NodeEvent.ADDED, second)
        kubernetes.client.CoreV1Api(sync.admin).patch_node(first, {"metadata": {"labels": {"zone": "b"}}})
        left = next(e for e in events if e.type != inventory_pb2.NodeEvent.MODIFIED)
        assert (left.type, left.node.name) == (inventory_pb2.NodeEvent.DELETED, first)
        events.cancel()


def test_watch_reports_inventory_changes_as_modified(sync: SyncHarness):
    app = sync.start()  # authentication off: the caller's node is not checked
    node = sync.register_node()
    sync.wait_for(lambda: sync.nodeimage(node), "NodeImage created")
    channel, client = stub(app)
    with channel:
        events = client.WatchNodes(
            inventory_pb2.WatchNodesRequest(
                selector=inventory_pb2.NodeSelector(names=types_pb2.NodeNames(names=[node]))
            ),
            timeout=120,
        )
        assert next(events).type == inventory_pb2.NodeEvent.ADDED
        assert next(events).type == inventory_pb2.NodeEvent.SYNCED
        client.ReportImages(report(node, [NGINX]))
        modified = next(events)
        assert (modified.type, modified.node.image_count, modified.node.image_bytes) == (
            inventory_pb2.NodeEvent.MODIFIED,
            1,
            1234,
        )
        assert modified.node.HasField("reported_at")
        events.cancel()
