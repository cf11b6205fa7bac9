"""The workloads of deploy/ read as a kubelet reads them, and the one small map from in-cluster to local things.

A test that runs a workload as a local process takes the container's `command`, `args` and `env` from the
manifest verbatim, so a flag or variable renamed in the code but not in the manifest (or the other way round)
makes the process refuse to start. Only what cannot exist outside a cluster is replaced, and every replacement is
one of these rules (anything they do not cover raises `UnmappedReferenceError`, so a new kind of reference fails loudly
instead of being passed on unchanged):

1. **Image.** `command[0]` is a console script the image installs (`pip install .` in the Dockerfile); locally it
   is the one in this virtualenv's `bin/`, which is the whole `PATH`. Of the image's own `ENV`, only
   `PYTHONUNBUFFERED=1` matters to a process (its logs are read while it runs), so it is set too. Nothing else of
   the test's environment reaches the process (it is started under `env -i`).
2. **API access.** In a Pod, the client library finds the apiserver through the kubelet's automounted
   ServiceAccount token and `KUBERNETES_SERVICE_HOST` (in-cluster configuration, fixed paths under
   /var/run/secrets). Locally: `KUBECONFIG` names a kubeconfig holding a token of the Pod's ServiceAccount, bound
   to the Pod, for the apiserver's audience, which is what the kubelet would mount.
3. **Downward API.** `env[].valueFrom.fieldRef` takes the field from the stand-in Pod object the apiserver
   returned (`metadata.name`, `metadata.namespace`, `metadata.uid`, `metadata.labels['k']`,
   `metadata.annotations['k']`, `spec.nodeName`, `spec.serviceAccountName`); `status.podIP` and `status.hostIP`
   are loopback (rule 4).
4. **Pod network.** Each Pod has its own network namespace; locally all share loopback. So every declared
   `containerPort` gets a free loopback port, and a listen address for it in an argument (`[::]:P`, `0.0.0.0:P`,
   `:P`) becomes `127.0.0.1:<local port>`. Probes use the same map.
5. **Service DNS.** `<service>.<namespace>.svc[.cluster.local]:<port>` (with or without a gRPC `dns:///` scheme,
   which is kept) becomes `127.0.0.1:<local port>` of the one running Pod the Service selects, through the
   Service's `targetPort`. A Deployment therefore runs one replica here, so that a Service has one address.
6. **Volumes.** A path under a `volumeMount`'s `mountPath` (also after `unix://`) moves to the same relative path
   under that volume's local directory: a projected `serviceAccountToken` is a real Pod-bound token for its
   audience and lifetime, written there; an `emptyDir` is an empty directory; a `hostPath` is the node's local
   directory for that host path, which the test names (e.g. `/run/containerd` -> the node's containerd directory,
   so the CRI socket argument reaches that node's containerd).

The kubelet's `$(VAR)` expansion in command, args and env values is reproduced. Not reproduced: users,
capabilities, seccomp and resource limits (the processes run as the test's user), and the kubelet's token
refreshes (the tokens outlive a test).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORKLOAD_KINDS = ("Deployment", "DaemonSet")
LOOPBACK = "127.0.0.1"
# Rule 1: the image's PATH is where `pip install .` put the console scripts; here, this virtualenv's.
CONSOLE_SCRIPTS_DIR = Path(sys.executable).parent
IMAGE_ENV = {"PYTHONUNBUFFERED": "1"}
# Rule 2: where the in-cluster configuration is replaced by a kubeconfig.
KUBECONFIG_ENV = "KUBECONFIG"
# Rule 3: the downward-API fields a stand-in Pod can answer.
POD_FIELDS = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "metadata.uid": ("metadata", "uid"),
    "spec.nodeName": ("spec", "nodeName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
}
LOOPBACK_FIELDS = ("status.podIP", "status.hostIP")
POD_MAP_FIELD = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")
# Rule 4: a listen address on all interfaces (or none named) of a declared port.
LISTEN_ADDRESS = re.compile(r"(?:\[::\]|0\.0\.0\.0)?:(\d+)")
# Rule 5: a Service's cluster DNS name with a port, optionally behind a gRPC target scheme.
SERVICE_ADDRESS = re.compile(
    r"(?P<scheme>[a-z]+:///)?(?P<service>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+)\.svc(?:\.cluster\.local)?:(?P<port>\d+)"
)
CLUSTER_NAME = re.compile(r"[a-z0-9-]+\.[a-z0-9-]+\.svc\b")
UNIX_SCHEME = "unix://"
# The kubelet expands `$(NAME)` in command, args and env values from the container's variables; `$$` escapes.
VARIABLE_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class UnmappedReferenceError(ValueError):
    """The manifest refers to something of the cluster that the local map has no rule for."""


@dataclass(frozen=True)
class Workload:
    """A Deployment or DaemonSet of deploy/, with the one container it runs."""

    document: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.document["kind"])

    @property
    def name(self) -> str:
        return str(self.document["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.document["metadata"]["namespace"])

    @property
    def template(self) -> Mapping[str, Any]:
        template: Mapping[str, Any] = self.document["spec"]["template"]
        return template

    @property
    def labels(self) -> Mapping[str, str]:
        labels: Mapping[str, str] = self.template["metadata"].get("labels") or {}
        return labels

    @property
    def node_selector(self) -> Mapping[str, str]:
        selector: Mapping[str, str] = self.template["spec"].get("nodeSelector") or {}
        return selector

    @property
    def container(self) -> Mapping[str, Any]:
        """The workload's only container (prepull's workloads have one each; more would need a rule)."""
        containers: Sequence[Mapping[str, Any]] = self.template["spec"]["containers"]
        if len(containers) != 1 or self.template["spec"].get("initContainers"):
            raise UnmappedReferenceError(f"{self.kind} {self.name}: expected exactly one container")
        return containers[0]

    @property
    def grace_seconds(self) -> float:
        return float(self.template["spec"].get("terminationGracePeriodSeconds", 30))

    def container_ports(self) -> dict[str, int]:
        """Declared container ports by name (unnamed ones by their number)."""
        return {str(port.get("name", port["containerPort"])): int(port["containerPort"]) for port in self._ports()}

    def _ports(self) -> Sequence[Mapping[str, Any]]:
        ports: Sequence[Mapping[str, Any]] = self.container.get("ports") or []
        return ports


@dataclass(frozen=True)
class Service:
    """A Service of deploy/: which Pods it selects and where each port goes."""

    document: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.document["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.document["metadata"]["namespace"])

    def selects(self, workload: Workload) -> bool:
        selector: Mapping[str, str] = self.document["spec"].get("selector") or {}
        return workload.namespace == self.namespace and bool(selector) and _subset(selector, workload.labels)

    def target_port(self, port: int) -> str:
        """The targetPort (a container port name or number, as text) of Service port `port`."""
        for entry in self.document["spec"]["ports"]:
            if int(entry["port"]) == port:
                return str(entry.get("targetPort", port))
        raise UnmappedReferenceError(f"Service {self.namespace}/{self.name} has no port {port}")


def workloads(documents: Sequence[Mapping[str, Any]]) -> list[Workload]:
    return [Workload(doc) for doc in documents if doc.get("kind") in WORKLOAD_KINDS]


def services(documents: Sequence[Mapping[str, Any]]) -> list[Service]:
    return [Service(doc) for doc in documents if doc.get("kind") == "Service"]


def node_matches(workload: Workload, node_labels: Mapping[str, str]) -> bool:
    """Whether a DaemonSet would place a Pod on a Node with these labels (its nodeSelector)."""
    return _subset(workload.node_selector, node_labels)


def referenced_services(workload: Workload, known: Sequence[Service]) -> list[Service]:
    """The Services the container's args and env values name (its dependencies: they must run first)."""
    container = workload.container
    texts = [*(container.get("args") or []), *(str(e.get("value", "")) for e in container.get("env") or [])]
    named = {(m["service"], m["namespace"]) for text in texts for m in SERVICE_ADDRESS.finditer(str(text))}
    return [service for service in known if (service.name, service.namespace) in named]


@dataclass(frozen=True)
class LocalPod:
    """One stand-in Pod of a workload: the Pod object the apiserver holds, and its local side.

    `ports` maps each declared container port (its number, as text) to its loopback port (rule 4);
    `volumes` maps each volume name to its local directory (rule 6).
    """

    workload: Workload
    pod: Mapping[str, Any]
    ports: Mapping[str, int]
    volumes: Mapping[str, Path]
    kubeconfig: Path

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    def local_port(self, port: str | int) -> int:
        """The loopback port of a container port given by name or number."""
        declared = self.workload.container_ports()
        number = declared.get(str(port), int(port) if str(port).isdigit() else None)
        if number is None or str(number) not in self.ports:
            raise UnmappedReferenceError(f"{self.name}: no container port {port!r}")
        return self.ports[str(number)]

    def readiness_url(self) -> str:
        """The readinessProbe's httpGet, on loopback."""
        probe = self.workload.container["readinessProbe"]["httpGet"]
        return f"http://{LOOPBACK}:{self.local_port(probe['port'])}{probe.get('path', '/')}"


@dataclass(frozen=True)
class Endpoint:
    """A Service and the one running stand-in Pod it selects (rule 5)."""

    service: Service
    pod: LocalPod


ServiceEndpoints = Mapping[tuple[str, str], Endpoint]
"""(Service name, namespace) -> its endpoint."""


def service_endpoints(known: Sequence[Service], running: Sequence[LocalPod]) -> dict[tuple[str, str], Endpoint]:
    """Each Service that selects exactly one running Pod (one that selects several, e.g. the pullers' node-local
    Service, has no single address here; naming it in an argument raises `UnmappedReferenceError`)."""
    endpoints = {}
    for service in known:
        selected = [pod for pod in running if service.selects(pod.workload)]
        if len(selected) == 1:
            endpoints[(service.name, service.namespace)] = Endpoint(service, selected[0])
    return endpoints


def container_argv(pod: LocalPod, endpoints: ServiceEndpoints) -> list[str]:
    """`env -i <environment> <command> <args>`: the manifest's, mapped by the rules above."""
    container = pod.workload.container
    command = list(container.get("command") or [])
    if not command:
        raise UnmappedReferenceError(f"{pod.name}: no command (the image sets none)")
    script = CONSOLE_SCRIPTS_DIR / command[0]
    if not script.exists():
        raise UnmappedReferenceError(f"{pod.name}: {command[0]} is not a console script this project installs")
    mapper = _ValueMapper(pod, endpoints)
    environment = container_env(pod, endpoints)
    args = [mapper.argument(expand(str(arg), environment)) for arg in (container.get("args") or [])]
    command_args = [expand(str(arg), environment) for arg in command[1:]]
    assignments = [f"{name}={value}" for name, value in environment.items()]
    return ["/usr/bin/env", "-i", *assignments, str(script), *command_args, *args]


def container_env(pod: LocalPod, endpoints: ServiceEndpoints) -> dict[str, str]:
    """The process environment: PATH and the image's ENV (rule 1), KUBECONFIG (rule 2), the manifest's env."""
    mapper = _ValueMapper(pod, endpoints)
    environment = {"PATH": f"{CONSOLE_SCRIPTS_DIR}:/usr/bin:/bin", **IMAGE_ENV, KUBECONFIG_ENV: str(pod.kubeconfig)}
    for entry in pod.workload.container.get("env") or []:
        if "valueFrom" in entry:
            environment[entry["name"]] = downward_value(pod.pod, entry["valueFrom"])
        else:
            environment[entry["name"]] = mapper.value(expand(str(entry.get("value", "")), environment))
    return environment


def expand(text: str, environment: Mapping[str, str]) -> str:
    """The kubelet's `$(VAR)` expansion: a defined variable's value, `$$` an escaped `$`, anything else as is."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return environment.get(match[1], match[0])

    return VARIABLE_REFERENCE.sub(replace, text)


def downward_value(pod: Mapping[str, Any], source: Mapping[str, Any]) -> str:
    """The value of a `valueFrom` taken from the Pod object (rule 3)."""
    if set(source) != {"fieldRef"}:
        raise UnmappedReferenceError(f"valueFrom {sorted(source)}: only fieldRef has a local rule")
    path = str(source["fieldRef"]["fieldPath"])
    if path in LOOPBACK_FIELDS:
        return LOOPBACK
    if path in POD_FIELDS:
        section, key = POD_FIELDS[path]
        return str(pod[section][key])
    matched = POD_MAP_FIELD.fullmatch(path)
    if matched is not None:
        return str((pod["metadata"].get(matched[1]) or {}).get(matched[2], ""))
    raise UnmappedReferenceError(f"fieldRef {path!r} has no local rule")


def mount_directories(workload: Workload, volumes: Mapping[str, Path]) -> list[tuple[str, Path]]:
    """(mountPath, local directory) of the container's mounts, longest mountPath first (rule 6)."""
    mounts = []
    for mount in workload.container.get("volumeMounts") or []:
        if mount["name"] not in volumes:
            raise UnmappedReferenceError(f"{workload.name}: volume {mount['name']!r} has no local directory")
        mounts.append((str(mount["mountPath"]).rstrip("/"), volumes[mount["name"]] / mount.get("subPath", "")))
    return sorted(mounts, key=lambda item: len(item[0]), reverse=True)


class _ValueMapper:
    """Rules 4-6 applied to one argument or env value; anything else passes verbatim."""

    def __init__(self, pod: LocalPod, endpoints: ServiceEndpoints) -> None:
        self._pod = pod
        self._endpoints = endpoints
        self._mounts = mount_directories(pod.workload, pod.volumes)

    def argument(self, arg: str) -> str:
        """`--flag=value` keeps the flag and maps the value; any other argument is mapped as a value."""
        if arg.startswith("--") and "=" in arg:
            flag, value = arg.split("=", 1)
            return f"{flag}={self.value(value)}"
        return self.value(arg)

    def value(self, text: str) -> str:
        for rule in (self._listen_address, self._service_address, self._mounted_path):
            mapped = rule(text)
            if mapped is not None:
                return mapped
        if CLUSTER_NAME.search(text):
            raise UnmappedReferenceError(f"{self._pod.name}: {text!r} names a cluster Service the map does not know")
        return text

    def _listen_address(self, text: str) -> str | None:
        matched = LISTEN_ADDRESS.fullmatch(text)
        if matched is None or matched[1] not in self._pod.ports:
            return None
        return f"{LOOPBACK}:{self._pod.ports[matched[1]]}"

    def _service_address(self, text: str) -> str | None:
        matched = SERVICE_ADDRESS.fullmatch(text)
        if matched is None:
            return None
        key = (matched["service"], matched["namespace"])
        if key not in self._endpoints:
            raise UnmappedReferenceError(f"{self._pod.name}: Service {key} selects no single running local Pod")
        endpoint = self._endpoints[key]
        port = endpoint.pod.local_port(endpoint.service.target_port(int(matched["port"])))
        return f"{matched['scheme'] or ''}{LOOPBACK}:{port}"

    def _mounted_path(self, text: str) -> str | None:
        scheme = UNIX_SCHEME if text.startswith(UNIX_SCHEME) else ""
        path = text.removeprefix(scheme)
        for mount_path, local in self._mounts:
            if path == mount_path or path.startswith(f"{mount_path}/"):
                return f"{scheme}{local}{path.removeprefix(mount_path)}"
        return None


def _subset(wanted: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())
