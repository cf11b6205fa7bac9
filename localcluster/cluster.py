"""The whole local cluster: control plane, two registries, N containerd nodes with Node objects and identities.

One `LocalCluster` serves the tests (started and stopped in-process), the demo and `make cluster-up` (started
by one process, used and stopped by others). For the second use everything a client needs is written to
`<state>/cluster.json`: the kubeconfig, registry addresses, each node's CRI socket and token files, and the PIDs
to stop. Starting twice with the same state directory re-uses a cluster whose processes still run.

Layout of the state directory:

    cluster.json            what `attach()` and `make cluster-down` read (mode 0600: it names a registry password)
    control-plane/          PKI, etcd data, kubeconfig, logs (localcluster.controlplane)
    registries/{open,auth}/ registry storage, config, htpasswd, logs
    nodes/<node>/tokens/    Pod-bound tokens, refreshed before they expire (localcluster.identity)
    runtime/<node>/         containerd root, state and socket (kept short: unix socket paths are limited)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client

from localcluster import identity, nodes
from localcluster.containerd import ContainerdNode
from localcluster.controlplane import ControlPlane
from localcluster.process import ManagedProcess, pid_alive, stop_pid
from localcluster.registry import Registry

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"
# PIDs of processes other commands run against the cluster (the demo's services and trace receiver): not part of
# the cluster (they may stop without it being broken), but `stop_recorded` stops them first so nothing is left.
ATTACHED_FILE = "attached.json"
# Long enough for `<base>/containerd.sock.ttrpc` to stay under the 107-byte unix socket limit.
MAX_RUNTIME_BASE = 80
DEFAULT_NODE_COUNT = 3
# Labels of the simulated nodes: a zone per node and a pool split, so selectors have something to select.
ZONES = ("zone-a", "zone-b", "zone-c")


def node_names(count: int) -> list[str]:
    """Names of the simulated nodes: node-1 … node-N (sorted by name as a user expects)."""
    width = len(str(count))
    return [f"node-{index:0{width}d}" for index in range(1, count + 1)]


def default_labels(index: int) -> dict[str, str]:
    """Labels a simulated node gets unless the caller chooses its own."""
    return {
        "topology.kubernetes.io/zone": ZONES[index % len(ZONES)],
        "prepull.io/pool": "general" if index % 2 == 0 else "gpu",
    }


@dataclass
class SimulatedNode:
    """One node: a Node object, its containerd and its puller identity (token files)."""

    name: str
    labels: dict[str, str]
    runtime: ContainerdNode
    identity: identity.NodeIdentity | None = None

    def describe(self, state_dir: Path) -> dict[str, Any]:
        """The JSON a puller for this node needs: CRI socket and token files per audience."""
        return {
            "name": self.name,
            "labels": self.labels,
            "cri_socket": str(self.runtime.socket),
            "runtime_dir": str(self.runtime.base_dir),
            "token_files": {a: str(identity.token_path(state_dir, self.name, a)) for a in identity.AUDIENCES},
            "pid": self.runtime.process.pid,
        }


@dataclass
class LocalCluster:
    """Everything of one local cluster, rooted at `state_dir`."""

    state_dir: Path
    node_count: int = DEFAULT_NODE_COUNT
    with_controller_manager: bool = True
    refresh_tokens_in_process: bool = True
    control_plane: ControlPlane = field(init=False)
    open_registry: Registry = field(init=False)
    auth_registry: Registry = field(init=False)
    nodes: dict[str, SimulatedNode] = field(init=False, default_factory=dict)
    token_refresher: ManagedProcess | None = field(init=False, default=None)
    _admin: kubernetes.client.ApiClient | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.resolve()
        self.control_plane = ControlPlane(
            self.state_dir / "control-plane", with_controller_manager=self.with_controller_manager
        )
        self.open_registry = Registry("open", self.state_dir / "registries" / "open")
        self.auth_registry = Registry("auth", self.state_dir / "registries" / "auth", auth=True)

    # --- life cycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start registries, control plane and nodes; on any failure stop what was started, then raise."""
        try:
            self.open_registry.start()
            self.auth_registry.start()
            self.control_plane.start()
            for index, name in enumerate(node_names(self.node_count)):
                self.add_node(name, default_labels(index))
        except BaseException:
            self.stop()
            raise
        self.save()

    def stop(self) -> None:
        """Stop every process this cluster started, nodes first; state stays on disk."""
        if self.token_refresher is not None:
            self.token_refresher.stop()
        for node in list(self.nodes.values()):
            if node.identity is not None:
                node.identity.stop()
            node.runtime.stop()
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        self.control_plane.stop()
        self.auth_registry.stop()
        self.open_registry.stop()

    def add_node(self, name: str, labels: Mapping[str, str] | None = None) -> SimulatedNode:
        """Start a containerd for `name`, register its Node (Ready, `labels`) and its puller identity."""
        runtime = ContainerdNode(
            name,
            self._runtime_dir(name),
            registries=[self.open_registry.address, self.auth_registry.address],
            docker_io_mirror=self.open_registry.address,
        )
        runtime.start()
        node = SimulatedNode(name=name, labels=dict(labels or {}), runtime=runtime)
        self.nodes[name] = node
        api = self.api_client()
        nodes.register_node(api, name, node.labels)
        identity.ensure_puller_service_account(api)
        node.identity = identity.NodeIdentity(api, state_dir=self.state_dir, node=name)
        if self.refresh_tokens_in_process:
            node.identity.start()
        else:
            node.identity.refresh()
        return node

    def remove_node(self, name: str) -> None:
        """Delete the Node object and stop that node's containerd (its data stays)."""
        node = self.nodes.pop(name)
        if node.identity is not None:
            node.identity.stop()
        node.runtime.stop()
        nodes.delete_node(self.api_client(), name)

    def start_token_refresher(self) -> None:
        """Keep token files fresh after this process exits (for `make cluster-up`): a detached child process."""
        self.token_refresher = ManagedProcess(
            name="token-refresher",
            argv=[sys.executable, "-m", "localcluster", "--state-dir", str(self.state_dir), "refresh-tokens"],
            log_path=self.state_dir / "token-refresher.log",
            cwd=Path(__file__).resolve().parent.parent,
        )
        self.token_refresher.start()
        self.save()

    # --- what clients need ---------------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    def api_client(self) -> kubernetes.client.ApiClient:
        """The cluster's one admin client (closed by `stop`); share it, do not close it."""
        if self._admin is None:
            self._admin = self.control_plane.api_client()
        return self._admin

    def describe(self) -> dict[str, Any]:
        """The JSON written to cluster.json: enough for another process to use or stop the cluster."""
        credentials = self.auth_registry.credentials
        return {
            "state_dir": str(self.state_dir),
            "kubeconfig": str(self.kubeconfig),
            "server": self.control_plane.server,
            "control_plane": self.control_plane.to_state(),
            "registries": {
                "open": {"address": self.open_registry.address, "pid": self.open_registry.process.pid},
                "auth": {
                    "address": self.auth_registry.address,
                    "pid": self.auth_registry.process.pid,
                    "username": credentials.username if credentials else None,
                    "password": credentials.password if credentials else None,
                },
            },
            "nodes": [node.describe(self.state_dir) for node in self.nodes.values()],
            "token_refresher_pid": self.token_refresher.pid if self.token_refresher else None,
        }

    def save(self) -> None:
        """Write cluster.json, readable by the owner only (it holds the auth registry's password)."""
        path = self.state_dir / STATE_FILE
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.describe(), handle, indent=2)

    def log_tails(self, lines: int = 30) -> str:
        """The end of every component's log, for test failure reports."""
        parts = [self.control_plane.log_tails(lines)]
        for registry in (self.open_registry, self.auth_registry):
            parts.append(f"----- registry {registry.name} -----\n{registry.log_tail(lines)}")
        for node in self.nodes.values():
            parts.append(f"----- containerd {node.name} -----\n{node.runtime.log_tail(lines)}")
        return "\n".join(parts)

    def _runtime_dir(self, name: str) -> Path:
        """containerd's base directory: under the state dir when the socket path fits, else under /tmp."""
        preferred = self.state_dir / "runtime" / name
        if len(str(preferred)) <= MAX_RUNTIME_BASE:
            return preferred
        short = Path(tempfile.mkdtemp(prefix="pp-")) / name
        log.info("state dir too long for unix sockets; node %s runs in %s", name, short)
        return short


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """cluster.json of `state_dir`, or None when there is none."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def recorded_pids(state: Mapping[str, Any]) -> list[int]:
    """Every PID cluster.json records, in stop order: refresher, nodes, control plane, registries."""
    pids: list[int | None] = [state.get("token_refresher_pid")]
    pids += [node.get("pid") for node in state.get("nodes", [])]
    control_pids = state.get("control_plane", {}).get("pids", {})
    pids += [control_pids.get(name) for name in ("kube-controller-manager", "kube-apiserver", "etcd")]
    pids += [registry.get("pid") for registry in state.get("registries", {}).values()]
    return [pid for pid in pids if isinstance(pid, int)]


def running(state: Mapping[str, Any]) -> bool:
    """True when every process cluster.json records still runs (a partly dead cluster is not re-used)."""
    pids = recorded_pids(state)
    return bool(pids) and all(pid_alive(pid) for pid in pids)


def attached_pids(state_dir: Path) -> list[int]:
    """The PIDs recorded in `<state>/attached.json` (`{"pids": [...]}`), or none when there is no such file."""
    path = state_dir / ATTACHED_FILE
    if not path.exists():
        return []
    pids = json.loads(path.read_text()).get("pids", [])
    return [pid for pid in pids if isinstance(pid, int)]


def record_attached(state_dir: Path, pids: Sequence[int]) -> None:
    """Record the PIDs of processes running against the cluster, replacing what was recorded before."""
    (state_dir / ATTACHED_FILE).write_text(json.dumps({"pids": list(pids)}, indent=2))


def stop_attached(state_dir: Path, *, timeout: float = 15.0) -> list[int]:
    """Stop the processes attached.json records (e.g. a previous demo's services); return those still running."""
    state = {"state_dir": str(state_dir)}
    stopped = [pid for pid in attached_pids(state_dir) if pid_alive(pid) and _started_by_us(pid, state)]
    for pid in stopped:
        stop_pid(pid, timeout=timeout)
    record_attached(state_dir, [])
    return stopped


def stop_recorded(state: Mapping[str, Any], *, timeout: float = 15.0) -> list[int]:
    """Stop the attached processes, then those cluster.json records, by PID; return those that were still running."""
    stopped = []
    attached = attached_pids(Path(state["state_dir"])) if state.get("state_dir") else []
    for pid in [*attached, *recorded_pids(state)]:
        if pid_alive(pid) and _started_by_us(pid, state):
            stop_pid(pid, timeout=timeout)
            stopped.append(pid)
    return stopped


def _started_by_us(pid: int, state: Mapping[str, Any]) -> bool:
    """Guard against a recycled PID: the process must mention our state directory or binaries in its argv."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    text = b" ".join(argv).decode(errors="replace")
    needles: Sequence[str] = (str(state.get("state_dir", "")), "prepull-testbin", "localcluster")
    runtime_dirs = [node.get("runtime_dir", "") for node in state.get("nodes", [])]
    return any(needle and needle in text for needle in [*needles, *runtime_dirs])
