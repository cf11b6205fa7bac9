"""One NodeImage per Node against the real apiserver: created after the delay, labels mirrored, deleted."""

from __future__ import annotations

import time

import kubernetes.client
import pytest

from localcluster import nodes
from services.shared.api import constants
from services.shared.kube import resources
from tests.integration.nodeimage_sync.conftest import RUN_LABEL, SyncHarness

pytestmark = pytest.mark.integration


def labels_of(sync: SyncHarness, name: str) -> dict[str, str] | None:
    nodeimage = sync.nodeimage(name)
    return None if nodeimage is None else dict(nodeimage["metadata"].get("labels") or {})


def test_ready_node_gets_a_nodeimage_with_its_labels_after_the_delay(sync: SyncHarness):
    sync.start(creation_delay=3.0)
    registered = time.monotonic()
    node = sync.register_node({"zone": "a"})
    sync.wait_for(lambda: sync.nodeimage(node), "NodeImage created")
    assert time.monotonic() - registered >= 2.0, "created before the Node had been Ready for the delay"
    labels = labels_of(sync, node)
    assert labels is not None
    assert labels["zone"] == "a"
    assert labels[RUN_LABEL] == sync.run_id
    assert labels["kubernetes.io/hostname"] == node


def test_relabelled_node_labels_are_replaced_entirely(sync: SyncHarness):
    sync.start()
    node = sync.register_node({"zone": "a", "old": "x"})
    sync.wait_for(lambda: (labels_of(sync, node) or {}).get("old") == "x", "NodeImage with the Node's labels")
    core = kubernetes.client.CoreV1Api(sync.admin)
    core.patch_node(node, {"metadata": {"labels": {"old": None, "zone": "b", "new": "y"}}})
    expected = dict(core.read_node(node).metadata.labels)
    sync.wait_for(lambda: labels_of(sync, node) == expected, "NodeImage labels replaced by the Node's")


def test_nodeimage_edited_labels_are_put_back(sync: SyncHarness):
    sync.start()
    node = sync.register_node({"zone": "a"})
    sync.wait_for(lambda: sync.nodeimage(node), "NodeImage created")
    sync.api.patch(resources.NODE_IMAGES, node, {"metadata": {"labels": {"zone": "z", "extra": "1"}}})
    sync.wait_for(
        lambda: (labels_of(sync, node) or {}).get("zone") == "a" and "extra" not in (labels_of(sync, node) or {}),
        "NodeImage labels restored from the Node",
    )


def test_deleted_node_takes_its_nodeimage_with_it(sync: SyncHarness):
    sync.start()
    node = sync.register_node()
    sync.wait_for(lambda: sync.nodeimage(node), "NodeImage created")
    kubernetes.client.CoreV1Api(sync.admin).delete_node(node)
    sync.wait_for(lambda: sync.nodeimage(node) is None, "NodeImage deleted with its Node")


def test_deleted_nodeimage_of_a_live_node_is_recreated(sync: SyncHarness):
    sync.start()
    node = sync.register_node()
    sync.wait_for(lambda: sync.nodeimage(node), "NodeImage created")
    uid = (sync.nodeimage(node) or {})["metadata"]["uid"]
    sync.api.delete(resources.NODE_IMAGES, node)
    sync.wait_for(
        lambda: (sync.nodeimage(node) or {"metadata": {"uid": uid}})["metadata"]["uid"] != uid, "NodeImage recreated"
    )


def test_not_ready_and_virtual_kubelet_nodes_get_no_nodeimage(sync: SyncHarness):
    sync.start()
    virtual = sync.register_node({"type": "virtual-kubelet"})
    not_ready = f"nis-{sync.run_id}-not-ready"
    manifest = nodes.node_manifest(not_ready, {RUN_LABEL: sync.run_id})
    manifest["status"]["conditions"][0]["status"] = "False"  # type: ignore[index]
    kubernetes.client.CoreV1Api(sync.admin).create_node(manifest)
    sync.node_names.append(not_ready)
    witness = sync.register_node()
    sync.wait_for(lambda: sync.nodeimage(witness), "NodeImage of an ordinary node")
    time.sleep(2.0)  # the delay is 1 s: the others had as long as the witness and then some
    assert sync.nodeimage(virtual) is None
    assert sync.nodeimage(not_ready) is None


def test_fake_nodeimage_is_kept_without_a_node(sync: SyncHarness):
    sync.start()
    fake = f"fake-{sync.run_id}"
    sync.create_fake_nodeimage(fake)
    orphan = f"orphan-{sync.run_id}"
    sync.api.create(
        resources.NODE_IMAGES,
        {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND_NODE_IMAGE,
            "metadata": {"name": orphan, "labels": {RUN_LABEL: sync.run_id}},
            "spec": {},
        },
    )
    sync.node_names.append(orphan)
    sync.wait_for(lambda: sync.nodeimage(orphan) is None, "NodeImage without a Node deleted")
    assert sync.nodeimage(fake) is not None
