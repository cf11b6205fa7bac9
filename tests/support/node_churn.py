"""Nodes leaving and joining a running local cluster together with their pullers, as in a real cluster.

When a Node is deleted its DaemonSet Pod goes with it; when a Node joins, the DaemonSet starts a puller on it.
`LocalCluster.add_node` / `remove_node` handle the Node object, containerd and the token files; these helpers
add the puller process on top, and take it out of the `Restarter`'s watch (through `PrepullSystem.services`)
so that a deliberately removed puller is not "restarted by the kubelet".
"""

from __future__ import annotations

from collections.abc import Mapping

from localcluster.cluster import LocalCluster, SimulatedNode
from localcluster.system import PrepullSystem
from tests.support.restarter import Restarter


def remove_node_and_puller(local: LocalCluster, services: PrepullSystem, restarter: Restarter, name: str) -> None:
    """Stop the node's puller (no longer watched), then delete the Node and stop its containerd."""
    with restarter.paused():
        services.stop_puller(name)
    local.remove_node(name)


def add_node_and_puller(
    local: LocalCluster,
    services: PrepullSystem,
    restarter: Restarter,
    name: str,
    labels: Mapping[str, str],
    *,
    trusted: list[str],
) -> SimulatedNode:
    """A new node (containerd, Node object, identity) trusting the `trusted` plain-HTTP registries, and its puller.

    The puller is started the way `PrepullSystem.start` starts every puller, pointed at the running scheduler
    and nodeimage_sync.
    """
    node = local.add_node(name, labels)
    for address in trusted:
        node.runtime.trust_registry(address)
    description = node.describe(local.state_dir)
    with restarter.paused():
        services.start_puller(description)
    services.wait_ready()
    return node
