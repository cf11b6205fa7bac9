"""Node objects for simulated nodes: what a kubelet would register, minus the kubelet.

No kubelet runs here, so nothing heartbeats and nothing marks a Node NotReady later (the controller manager
runs no node-lifecycle controller). A registered Node stays Ready with the labels the caller chose, which is
what NodeImage management, node selectors and Pod-bound tokens (their node-name claim) need.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping

import kubernetes.client
from kubernetes.client.exceptions import ApiException

HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409


def register_node(
    api: kubernetes.client.ApiClient, name: str, labels: Mapping[str, str] | None = None
) -> kubernetes.client.V1Node:
    """Create (or update) Node `name` with `labels` and a Ready=True condition; idempotent.

    `kubernetes.io/hostname` and `kubernetes.io/os` are set as a kubelet would; the caller's labels win.
    """
    core = kubernetes.client.CoreV1Api(api)
    body = node_manifest(name, labels)
    try:
        node: kubernetes.client.V1Node = core.create_node(body)
        return node
    except ApiException as error:
        if error.status != HTTP_CONFLICT:
            raise
    core.patch_node(name, {"metadata": {"labels": body["metadata"]["labels"]}})
    patched: kubernetes.client.V1Node = core.patch_node_status(name, {"status": body["status"]})
    return patched


def delete_node(api: kubernetes.client.ApiClient, name: str) -> None:
    """Delete Node `name`; a Node that is already gone is fine."""
    try:
        kubernetes.client.CoreV1Api(api).delete_node(name)
    except ApiException as error:
        if error.status != HTTP_NOT_FOUND:
            raise


def node_manifest(name: str, labels: Mapping[str, str] | None = None) -> dict[str, dict[str, object]]:
    """The Node object a kubelet on loopback would register (status included: Nodes accept it on create)."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    all_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"} | dict(labels or {})
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "simulated node of the local cluster",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }
    return {
        "metadata": {"name": name, "labels": all_labels},
        "status": {
            "conditions": [ready],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        },
    }
