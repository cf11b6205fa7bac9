"""deploy/'s workloads running as local processes against a real apiserver, each in a stand-in Pod.

For every workload (a Deployment: one Pod; a DaemonSet: one Pod per Node its nodeSelector matches) the runner
creates a Pod from the workload's own template, bound to a Node with `spec.nodeName`. No kubelet runs it, but it
is real where it matters: the apiserver validates the template, tokens are bound to the Pod (and so to its Node),
and the downward API reads it. The runner then does the kubelet's part with the rules of `workload_manifests`:
volumes (real tokens, host directories), the container as a process, its readiness probe, and, when the Pod is
deleted (its namespace goes, say), SIGTERM and the final deletion with grace period 0.
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import yaml
from kubernetes.client.exceptions import ApiException

from localcluster import identity
from localcluster.process import ManagedProcess, free_port, wait_until
from tests.support import workload_manifests as manifests

# The API token stands for the kubelet's automounted one (rule 2), which it renews; ours simply outlives a test.
API_TOKEN_SECONDS = 24 * 3600
PROJECTED_TOKEN_DEFAULT_SECONDS = 3600
START_TIMEOUT = 90.0
LAUNCH_ATTEMPTS = 3
# argparse's exit status for unusable flags: a drift between manifest and code, never worth a second launch.
USAGE_ERROR = 2
KUBELET_SYNC_SECONDS = 0.5
HTTP_NOT_FOUND = 404
REQUEST_TIMEOUT = 10.0

HostPaths = Mapping[str, Mapping[str, Path]]
"""Node name -> (hostPath path -> that node's local directory)."""


@dataclass
class RunningPod:
    """A stand-in Pod and the process that is its container."""

    local: manifests.LocalPod
    process: ManagedProcess

    @property
    def name(self) -> str:
        return self.local.name

    @property
    def node(self) -> str:
        return str(self.local.pod["spec"]["nodeName"])

    def answers(self) -> bool:
        """True once the readiness endpoint answers at all (a standby answers 503)."""
        try:
            self.ready()
        except OSError:
            return False
        return True

    def ready(self) -> bool:
        """The readiness probe passes (HTTP 200)."""
        try:
            with urllib.request.urlopen(self.local.readiness_url(), timeout=3) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as answer:
            answer.close()
            return False


class LocalWorkloads:
    """The workloads of `documents` (deploy/'s objects) as stand-in Pods with local processes.

    Args:
        api: an admin client of the cluster (creates Pods, requests tokens).
        kubeconfig: the admin kubeconfig (its cluster entry is copied into each Pod's kubeconfig).
        server: the apiserver URL, also the audience of API tokens.
        state_dir: where each Pod's files and container log go.
        documents: the kustomization's objects (workloads and Services are used).
        host_paths: per node, the local directory of each hostPath a workload mounts.
    """

    def __init__(
        self,
        *,
        api: kubernetes.client.ApiClient,
        kubeconfig: Path,
        server: str,
        state_dir: Path,
        documents: Sequence[Mapping[str, Any]],
        host_paths: HostPaths,
    ) -> None:
        self.api = api
        self.kubeconfig = kubeconfig
        self.server = server
        self.state_dir = state_dir
        self.workloads = manifests.workloads(documents)
        self.services = manifests.services(documents)
        self.host_paths = host_paths
        self.pods: dict[str, RunningPod] = {}
        self._lock = threading.Lock()

    # --- life cycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every workload's Pods, each after the workloads whose Services it names; return when all answer."""
        for workload in self._start_order():
            for node in self._nodes_for(workload):
                self._run_pod(workload, node)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Every Pod's readiness probe passes (for leader-elected services: the one replica leads)."""
        for pod in list(self.pods.values()):
            wait_until(pod.ready, timeout=timeout, interval=0.3, what=f"{pod.name} readiness probe")

    def stop(self) -> None:
        """Stop every process (SIGTERM, SIGKILL after the Pod's grace period) and delete the stand-in Pods."""
        with self._lock:
            running = list(self.pods.values())
            self.pods.clear()
        for pod in running:
            pod.process.stop()
            self._delete_pod_now(pod.name, pod.local.workload.namespace)

    def by_workload(self, name: str) -> list[RunningPod]:
        return [pod for pod in self.pods.values() if pod.local.workload.name == name]

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(f"----- {pod.name} -----\n{pod.process.log_tail(lines)}" for pod in self.pods.values())

    # --- the kubelet's reaction to deletion ---------------------------------------------------------------

    def sync_deleted_pods(self) -> list[str]:
        """For each Pod that is being deleted (or gone): stop its process, then remove the Pod; return their names."""
        core = kubernetes.client.CoreV1Api(self.api)
        finished = []
        for pod in list(self.pods.values()):
            try:
                current = core.read_namespaced_pod(
                    pod.name, pod.local.workload.namespace, _request_timeout=REQUEST_TIMEOUT
                )
            except ApiException as error:
                if error.status != HTTP_NOT_FOUND:
                    raise
                current = None
            if current is not None and current.metadata.deletion_timestamp is None:
                continue
            pod.process.stop()
            self._delete_pod_now(pod.name, pod.local.workload.namespace)
            with self._lock:
                self.pods.pop(pod.name, None)
            finished.append(pod.name)
        return finished

    @contextlib.contextmanager
    def acting_as_kubelet(self) -> Iterator[None]:
        """While inside, a thread reacts to Pod deletions as a kubelet would (see `sync_deleted_pods`)."""
        stopping = threading.Event()

        def loop() -> None:
            while not stopping.wait(KUBELET_SYNC_SECONDS):
                with contextlib.suppress(Exception):  # apiserver busy deleting: the next pass retries
                    self.sync_deleted_pods()

        thread = threading.Thread(target=loop, name="stand-in-kubelet", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stopping.set()
            thread.join(timeout=60)

    # --- one Pod -------------------------------------------------------------------------------------------

    def _run_pod(self, workload: manifests.Workload, node: str) -> None:
        pod = self._create_pod(workload, node)
        try:
            self._run_container(workload, pod, node)
        except BaseException:
            self._delete_pod_now(pod.metadata.name, workload.namespace)
            raise

    def _run_container(self, workload: manifests.Workload, pod: kubernetes.client.V1Pod, node: str) -> None:
        directory = self.state_dir / "pods" / pod.metadata.name
        volumes = self._volumes(workload, pod, node, directory / "volumes")
        kubeconfig = self._api_kubeconfig(pod, directory)
        document: dict[str, Any] = self.api.sanitize_for_serialization(pod)
        tail = ""
        for _ in range(LAUNCH_ATTEMPTS):
            ports = {str(number): free_port() for number in workload.container_ports().values()}
            local = manifests.LocalPod(workload, document, ports, volumes, kubeconfig)
            running, tail = self._launch(local, directory)
            if running is not None:
                return
        raise RuntimeError(f"{pod.metadata.name} exited at start {LAUNCH_ATTEMPTS} times:\n{tail}")

    def _launch(self, local: manifests.LocalPod, directory: Path) -> tuple[RunningPod | None, str]:
        """Start the container's process; (None, its log tail) when it exited before answering.

        A process that lost a port between `free_port` and its bind exits at once; fresh ports are the cure.
        """
        endpoints = manifests.service_endpoints(self.services, [pod.local for pod in self.pods.values()])
        argv = manifests.container_argv(local, endpoints)
        process = ManagedProcess(
            name=local.name,
            argv=argv,
            log_path=directory / "container.log",
            cwd=directory,
            stop_timeout=local.workload.grace_seconds,
        )
        running = RunningPod(local, process)
        with self._lock:
            self.pods[local.name] = running
        process.start()
        wait_until(lambda: not process.alive() or running.answers(), timeout=START_TIMEOUT, what=local.name)
        if process.alive():
            return running, ""
        code = process.exited_with()
        tail = process.log_tail(20)
        with self._lock:
            self.pods.pop(local.name, None)
        process.stop()
        if code == USAGE_ERROR:
            raise RuntimeError(f"{local.name} refused its manifest's command line (exit {code}):\n{tail}")
        return None, tail

    def _create_pod(self, workload: manifests.Workload, node: str) -> kubernetes.client.V1Pod:
        """A Pod of the workload's own template, bound to `node` (a name like the controllers give)."""
        template = workload.template
        metadata = {
            "name": f"{workload.name}-{uuid.uuid4().hex[:5]}",
            "namespace": workload.namespace,
            "labels": dict(workload.labels),
            "annotations": dict(template["metadata"].get("annotations") or {}),
        }
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {**template["spec"], "nodeName": node}}
        core = kubernetes.client.CoreV1Api(self.api)
        created: kubernetes.client.V1Pod = core.create_namespaced_pod(workload.namespace, body)
        return created

    def _volumes(
        self, workload: manifests.Workload, pod: kubernetes.client.V1Pod, node: str, root: Path
    ) -> dict[str, Path]:
        """Each volume's local directory (rule 6), with projected tokens written into it."""
        local = {}
        for volume in workload.template["spec"].get("volumes") or []:
            name = volume["name"]
            if "hostPath" in volume:
                path = volume["hostPath"]["path"]
                if path not in self.host_paths.get(node, {}):
                    raise manifests.UnmappedReferenceError(f"hostPath {path} has no local directory on node {node}")
                local[name] = self.host_paths[node][path]
            elif "emptyDir" in volume:
                local[name] = root / name
                local[name].mkdir(parents=True, exist_ok=True)
            elif "projected" in volume:
                local[name] = root / name
                self._write_projected_tokens(pod, volume["projected"], local[name])
            else:
                raise manifests.UnmappedReferenceError(f"volume {name} of {workload.name}: no local rule for its type")
        return local

    def _write_projected_tokens(self, pod: kubernetes.client.V1Pod, projected: Mapping[str, Any], root: Path) -> None:
        for source in projected["sources"]:
            if set(source) != {"serviceAccountToken"}:
                raise manifests.UnmappedReferenceError(f"projected source {sorted(source)}: only serviceAccountToken")
            wanted = source["serviceAccountToken"]
            token = identity.request_pod_token(
                self.api,
                pod=pod,
                audience=wanted.get("audience", self.server),
                expiration_seconds=int(wanted.get("expirationSeconds", PROJECTED_TOKEN_DEFAULT_SECONDS)),
            )
            identity.write_token_file(root / wanted["path"], token.token)

    def _api_kubeconfig(self, pod: kubernetes.client.V1Pod, directory: Path) -> Path:
        """A kubeconfig with a Pod-bound token of the Pod's ServiceAccount for the apiserver (rule 2)."""
        token = identity.request_pod_token(
            self.api, pod=pod, audience=self.server, expiration_seconds=API_TOKEN_SECONDS
        )
        cluster = yaml.safe_load(self.kubeconfig.read_text())["clusters"][0]
        name = pod.metadata.name
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": name, "user": {"token": token.token}}],
            "contexts": [{"name": name, "context": {"cluster": cluster["name"], "user": name}}],
            "current-context": name,
        }
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "kubeconfig"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(document, handle)
        return path

    def _delete_pod_now(self, name: str, namespace: str) -> None:
        """The kubelet's last word on a stopped Pod: delete with grace period 0."""
        core = kubernetes.client.CoreV1Api(self.api)
        try:
            core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                raise

    # --- placement and order -------------------------------------------------------------------------------

    def _nodes_for(self, workload: manifests.Workload) -> list[str]:
        """A Deployment's one replica goes to the first Node (rule 5); a DaemonSet's to each matching Node."""
        listed = kubernetes.client.CoreV1Api(self.api).list_node().items
        names = sorted(
            node.metadata.name for node in listed if manifests.node_matches(workload, node.metadata.labels or {})
        )
        if not names:
            raise RuntimeError(f"no Node for {workload.kind} {workload.name}")
        return names if workload.kind == "DaemonSet" else names[:1]

    def _start_order(self) -> list[manifests.Workload]:
        """Workloads ordered so that each starts after those its arguments reach through a Service."""
        needs = {
            workload.name: {
                other.name
                for service in manifests.referenced_services(workload, self.services)
                for other in self.workloads
                if service.selects(other)
            }
            for workload in self.workloads
        }
        ordered: list[manifests.Workload] = []
        while len(ordered) < len(self.workloads):
            done = {workload.name for workload in ordered}
            ready = [w for w in self.workloads if w.name not in done and needs[w.name] <= done]
            if not ready:
                raise manifests.UnmappedReferenceError(f"workloads name each other's Services in a cycle: {needs}")
            ordered.extend(ready)
        return ordered
