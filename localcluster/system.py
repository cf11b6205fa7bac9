"""prepull's three services as separate processes on the local cluster, each under its own identity.

This is the code path of `make run`, `make demo` and the end-to-end tests: the same console-script entry points
a Deployment or DaemonSet runs, with the manifests' RBAC (`deploy/rbac/`) applied, and each process holding only
its own ServiceAccount's token:

- scheduler and nodeimage_sync: a kubeconfig with a TokenRequest token of `prepull-scheduler` /
  `prepull-nodeimage-sync`, as a projected token would give a Pod of their Deployment;
- one puller per node: a kubeconfig with a token bound to that node's placeholder Pod (so the apiserver sees the
  node name, as for a DaemonSet Pod), and the node's token files for our two audiences, kept fresh by the
  cluster's refresher.

Everything listens on free loopback ports; logs go to `<state>/services/<name>.log`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import yaml

from localcluster import binaries, identity
from localcluster.process import ManagedProcess, free_port, wait_until

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
NAMESPACE = "prepull-system"
SERVICE_ACCOUNTS = {"scheduler": "prepull-scheduler", "nodeimage_sync": "prepull-nodeimage-sync"}
# Long enough for any demo or test session; the apiserver accepts up to its configured maximum.
SERVICE_TOKEN_SECONDS = 24 * 3600
# What `kubectl apply` installs before the services start: the manifests' own namespace, CRDs, RBAC and admission.
INSTALL_PATHS = ("namespace.yaml", "crd", "rbac", "admission")
READY_TIMEOUT = 90.0
# Launches of one service before giving up (each on fresh ports; see `PrepullSystem._running`).
LAUNCH_ATTEMPTS = 3


@dataclass
class ServiceProcess:
    """One running service: its process and the addresses it serves."""

    name: str
    process: ManagedProcess
    grpc_port: int
    health_port: int
    node: str | None = None
    launch: tuple[str, Path, tuple[str, ...]] = ("", Path(), ())
    """(kind, kubeconfig, flags): what `PrepullSystem` needs to launch it again on fresh ports."""

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def ready(self) -> bool:
        """True when `/readyz` answers 200 (for leader-elected services: this replica leads)."""
        try:
            with urllib.request.urlopen(f"{self.health_url}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as answer:
            answer.close()  # an HTTPError holds the connection open until closed
            return False

    def metrics(self) -> str:
        """The Prometheus text exposition (metrics and health share the port here)."""
        with urllib.request.urlopen(f"{self.health_url}/metrics", timeout=5) as response:
            text: str = response.read().decode()
            return text


@dataclass
class PrepullSystem:
    """The three services against the cluster described by `cluster_state` (the content of cluster.json).

    Args:
        cluster_state: `LocalCluster.describe()` or `cluster.read_state(...)`.
        extra_flags: per service ("scheduler", "nodeimage_sync", "puller"), flags appended to its command line,
            e.g. shorter timers in tests.
        env: extra environment for every process (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT`).
    """

    cluster_state: Mapping[str, Any]
    extra_flags: Mapping[str, Sequence[str]] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(init=False, default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return Path(self.cluster_state["state_dir"]) / "services"

    # --- install ------------------------------------------------------------------------------------------

    def install(self) -> None:
        """Apply namespace, CRDs, RBAC and admission policies from deploy/, and wait for the CRDs to be served."""
        paths = [DEPLOY / part for part in INSTALL_PATHS if (DEPLOY / part).exists()]
        args = [arg for path in paths for arg in ("-f", str(path))]
        self.kubectl("apply", "--server-side", "--force-conflicts", *args)
        crds = [f"crd/{plural}.prepull.io" for plural in ("imagepulljobs", "imagelistpulljobs", "nodeimages")]
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)

    def kubectl(self, *args: str) -> str:
        """Run kubectl v1.34 as the admin; raise with its output when it fails."""
        command = [str(binaries.binary("kubectl")), "--kubeconfig", self.cluster_state["kubeconfig"], *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    # --- life cycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start nodeimage_sync, the scheduler and one puller per node; return when all are ready."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._admin_client() as admin:
            self._start_all(admin)
            self.wait_ready()
            self._wait_for_nodeimages(admin)

    def _wait_for_nodeimages(self, admin: kubernetes.client.ApiClient, timeout: float = READY_TIMEOUT) -> None:
        """Every node has its NodeImage: a job created before that would not see the late nodes as targets."""
        wanted = {node["name"] for node in self.cluster_state["nodes"]}
        wait_until(
            lambda: wanted <= _nodeimage_names(admin), timeout=timeout, interval=0.2, what="a NodeImage for every node"
        )

    def _start_all(self, admin: kubernetes.client.ApiClient) -> None:
        """Peers first (pullers are given their addresses), then the pullers; each tier running before the next."""
        sync = self._start_service("nodeimage_sync", self._service_kubeconfig(admin, "nodeimage_sync"))
        scheduler = self._start_service("scheduler", self._service_kubeconfig(admin, "scheduler"))
        sync, scheduler = (self._running(service) for service in (sync, scheduler))
        for node in self.cluster_state["nodes"]:
            self._start_puller(admin, node, scheduler=scheduler, inventory=sync)

    def stop(self) -> None:
        """Stop every service process (SIGTERM, then SIGKILL after the grace period)."""
        for service in reversed(list(self.services.values())):
            service.process.stop()
        self.services.clear()

    def start_puller(self, node: Mapping[str, Any]) -> None:
        """Start the puller of a node that joined after `start` (the DaemonSet's Pod on a new node).

        `node` is the node's description (`SimulatedNode.describe`); the puller talks to the running scheduler
        and nodeimage_sync.
        """
        with self._admin_client() as admin:
            self._start_puller(
                admin, node, scheduler=self.services["scheduler"], inventory=self.services["nodeimage_sync"]
            )

    def stop_puller(self, node_name: str) -> None:
        """Stop a node's puller and forget it (its Node is leaving; nothing should restart it)."""
        self.services.pop(f"puller-{node_name}").process.stop()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        for started in list(self.services.values()):
            service = self._running(started, timeout=timeout)
            wait_until(service.ready, timeout=timeout, what=f"{service.name} /readyz")

    def _running(self, service: ServiceProcess, *, timeout: float = READY_TIMEOUT) -> ServiceProcess:
        """The service once it answers `/readyz` at all; launched again on fresh ports if it exited first.

        A port can be taken between `free_port` and the service's own bind; the service then exits at once
        with a bind error, and a fresh pair of ports is the whole cure.
        """
        for _ in range(LAUNCH_ATTEMPTS):
            wait_until(partial(_exited_or_answers, service), timeout=timeout, what=service.name)
            if service.process.alive():
                return service
            kind, kubeconfig, flags = service.launch
            service.process.stop()
            node = service.node
            service = self._start_service(kind, kubeconfig, name=service.name, flags=flags)
            service.node = node
        raise RuntimeError(f"{service.name} exited at start {LAUNCH_ATTEMPTS} times:\n{service.process.log_tail(20)}")

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(f"----- {s.name} -----\n{s.process.log_tail(lines)}" for s in self.services.values())

    def describe(self) -> dict[str, Any]:
        """Addresses and PIDs of the running services (written to services.json for other tools)."""
        return {
            name: {"pid": s.process.pid, "grpc": s.grpc_address, "health": s.health_url, "node": s.node}
            for name, s in self.services.items()
        }

    # --- internals ----------------------------------------------------------------------------------------

    def _start_service(
        self, kind: str, kubeconfig: Path, *, name: str | None = None, flags: Sequence[str] = ()
    ) -> ServiceProcess:
        name = name or kind
        grpc_port, health_port = free_port(), free_port()
        argv = [
            sys.executable,
            "-m",
            f"services.{kind}",
            "--kubeconfig",
            str(kubeconfig),
            "--grpc-address",
            f"127.0.0.1:{grpc_port}",
            "--metrics-address",
            f"127.0.0.1:{health_port}",
            "--health-address",
            f"127.0.0.1:{health_port}",
            *flags,
            *self.extra_flags.get(kind, ()),
        ]
        env = {"OTEL_SERVICE_NAME": f"prepull-{kind.replace('_', '-')}", "PYTHONUNBUFFERED": "1", **self.env}
        process = ManagedProcess(name=name, argv=argv, log_path=self.state_dir / f"{name}.log", env=env, cwd=REPO)
        process.start()
        service = ServiceProcess(
            name=name,
            process=process,
            grpc_port=grpc_port,
            health_port=health_port,
            launch=(kind, kubeconfig, tuple(flags)),
        )
        self.services[name] = service
        return service

    def _start_puller(
        self,
        admin: kubernetes.client.ApiClient,
        node: Mapping[str, Any],
        *,
        scheduler: ServiceProcess,
        inventory: ServiceProcess,
    ) -> None:
        files = node["token_files"]
        flags = [
            "--node-name",
            node["name"],
            "--cri-socket",
            f"unix://{node['cri_socket']}",
            "--scheduler-address",
            scheduler.grpc_address,
            "--credentials-token-file",
            files[identity.CREDENTIALS_AUDIENCE],
            "--inventory-address",
            inventory.grpc_address,
            "--inventory-token-file",
            files[identity.INVENTORY_AUDIENCE],
        ]
        kubeconfig = self._puller_kubeconfig(admin, node["name"])
        service = self._start_service("puller", kubeconfig, name=f"puller-{node['name']}", flags=flags)
        service.node = node["name"]

    def _admin_client(self) -> kubernetes.client.ApiClient:
        client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(
            config_file=self.cluster_state["kubeconfig"]
        )
        return client

    def _service_kubeconfig(self, admin: kubernetes.client.ApiClient, kind: str) -> Path:
        """A kubeconfig holding a token of the service's own ServiceAccount (what its Pod would have)."""
        request = {"spec": {"expirationSeconds": SERVICE_TOKEN_SECONDS}}
        response = kubernetes.client.CoreV1Api(admin).create_namespaced_service_account_token(
            SERVICE_ACCOUNTS[kind], NAMESPACE, request
        )
        return self._write_kubeconfig(kind, response.status.token)

    def _puller_kubeconfig(self, admin: kubernetes.client.ApiClient, node: str) -> Path:
        """A kubeconfig with a token bound to the node's placeholder Pod: the apiserver knows its node."""
        pod = identity.ensure_placeholder_pod(admin, node)
        issuer = self.cluster_state["server"]
        token = identity.request_pod_token(admin, pod=pod, audience=issuer, expiration_seconds=SERVICE_TOKEN_SECONDS)
        return self._write_kubeconfig(f"puller-{node}", token.token)

    def _write_kubeconfig(self, name: str, token: str) -> Path:
        admin_config = yaml.safe_load(Path(self.cluster_state["kubeconfig"]).read_text())
        cluster = admin_config["clusters"][0]
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": cluster["name"], "user": name}}],
            "current-context": name,
        }
        path = self.state_dir / f"{name}.kubeconfig"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(document, handle)
        return path

    def save(self) -> Path:
        path = self.state_dir / "services.json"
        path.write_text(json.dumps(self.describe(), indent=2))
        return path


def _exited_or_answers(service: ServiceProcess) -> bool:
    """True once the process exited, or its HTTP endpoint answers (ready or not: a standby answers 503)."""
    if not service.process.alive():
        return True
    try:
        service.ready()
    except OSError:
        return False
    return True


METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
"""Asks a list for each object's metadata only (what `kubectl get -o name` needs)."""


def _nodeimage_names(admin: kubernetes.client.ApiClient) -> set[str]:
    """Every NodeImage's name, read as metadata in pages.

    At thousands of NodeImages with hundreds of tag entries each, the whole objects are hundreds of MB: a
    harness polling for them kept the apiserver busy for tens of seconds per poll, and slowed the very services
    a benchmark was timing.
    """
    names: set[str] = set()
    continue_token = ""
    while True:
        query = [("limit", "500")] + ([("continue", continue_token)] if continue_token else [])
        response = admin.call_api(
            "/apis/prepull.io/v1beta1/nodeimages",
            "GET",
            query_params=query,
            header_params={"Accept": METADATA_ONLY},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
        page = json.loads(response.data)
        names.update(item["metadata"]["name"] for item in page.get("items") or [])
        continue_token = (page.get("metadata") or {}).get("continue") or ""
        if not continue_token:
            return names
