"""The workloads in deploy/ agree with the code they run, read without a cluster.

Each Deployment/DaemonSet of the default kustomization must run one of our console scripts (pyproject.toml) as an
existing ServiceAccount, pass only flags that the service's `--help` lists, and set only environment variables the
service reads. Ports, probes, Services, NetworkPolicies and token paths must point at what the flags configure,
so a renamed flag or a moved port fails here instead of in a cluster. The Grafana dashboard may query only the
series it lists, and only series the services' metric definitions expose.

Flag cases are collected only for services whose `__main__` module exists (all three at the time of writing); the
parametrized ids name the services covered.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from services.nodeimage_sync.metrics import Metrics as NodeImageSyncMetrics
from services.puller.metrics import PullerMetrics
from services.scheduler.metrics import SchedulerMetrics
from tests.support import rbac_table
from tests.support.deploy_manifests import DEPLOY_DIR, REPO_ROOT, kustomization_documents

WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")
DASHBOARD = DEPLOY_DIR / "observability" / "grafana-dashboard.json"
DASHBOARD_SERIES = DEPLOY_DIR / "observability" / "grafana-dashboard-series.txt"
SERIES_NAME = re.compile(r"\bprepull_[a-z0-9_]+\b")
FLAG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")
HELP_ENV = re.compile(r"\[env ([A-Z0-9_]+)\]")
HELP_TIMEOUT_SECONDS = 120
PULLER_AUDIENCES = {
    "prepull.io/credentials": "--credentials-token-file",
    "prepull.io/inventory": "--inventory-token-file",
}
LEADER_ELECTED = ("prepull-scheduler", "prepull-nodeimage-sync")


def _console_scripts() -> dict[str, str]:
    """Console script name -> the module it runs (`services.scheduler.__main__:main` -> `services.scheduler`)."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return {name: target.partition(":")[0].removesuffix(".__main__") for name, target in scripts.items()}


def _workloads() -> list[dict[str, Any]]:
    return [doc for doc in kustomization_documents() if doc["kind"] in WORKLOAD_KINDS]


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = workload["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def _module_has_main(module: str) -> bool:
    return (REPO_ROOT / module.replace(".", "/") / "__main__.py").exists()


def _flag_cases() -> list[tuple[str, dict[str, Any]]]:
    scripts = _console_scripts()
    return [
        (scripts[container["command"][0]], container)
        for workload in _workloads()
        for container in _containers(workload)
        if container.get("command", [""])[0] in scripts and _module_has_main(scripts[container["command"][0]])
    ]


@cache
def _help(module: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=HELP_TIMEOUT_SECONDS,
        check=True,
    )
    return result.stdout


def _flag_names(args: list[str]) -> list[str]:
    return [arg.partition("=")[0] for arg in args if arg.startswith("--")]


def _flag_values(container: dict[str, Any]) -> dict[str, str]:
    return {name: value for name, _, value in (arg.partition("=") for arg in container.get("args", []))}


def _port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def _container_ports(container: dict[str, Any]) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container.get("ports", [])}


def _workload_named(name: str) -> dict[str, Any]:
    (workload,) = [each for each in _workloads() if each["metadata"]["name"] == name]
    return workload


# --- identities and commands ---------------------------------------------------------------------------------------


def test_every_workload_runs_as_a_documented_service_account_defined_in_deploy() -> None:
    defined = {
        doc["metadata"]["name"]
        for doc in kustomization_documents()
        if doc["kind"] == "ServiceAccount" and doc["metadata"]["namespace"] == rbac_table.SERVICE_NAMESPACE
    }
    workloads = _workloads()

    assert workloads, "deploy/kustomization.yaml lists no workloads"
    for workload in workloads:
        account = workload["spec"]["template"]["spec"].get("serviceAccountName")
        assert workload["metadata"]["namespace"] == rbac_table.SERVICE_NAMESPACE
        assert account in defined, f"{workload['metadata']['name']} runs as unknown ServiceAccount {account!r}"
        assert account in rbac_table.service_accounts()


def test_every_container_command_is_one_of_our_console_scripts() -> None:
    scripts = _console_scripts()
    for workload in _workloads():
        for container in _containers(workload):
            command = container.get("command", [])
            assert len(command) == 1 and command[0] in scripts, f"{container['name']}: command {command!r}"
            assert all(arg.startswith("--") for arg in container.get("args", [])), "args are flags only"


def test_each_service_runs_in_exactly_one_workload() -> None:
    commands = sorted(container["command"][0] for workload in _workloads() for container in _containers(workload))
    services = sorted(name for name in _console_scripts() if name != "prepull")

    assert commands == services


@pytest.mark.parametrize(
    ("module", "container"), _flag_cases(), ids=[f"{module}:{c['name']}" for module, c in _flag_cases()]
)
def test_every_manifest_flag_is_in_the_service_help(module: str, container: dict[str, Any]) -> None:
    documented = set(FLAG.findall(_help(module)))
    used = _flag_names(container.get("args", []))

    assert used, f"{module}: the manifest passes no flags"
    assert sorted(set(used) - documented) == []
    assert len(used) == len(set(used)), "a flag is given twice"


@pytest.mark.parametrize(
    ("module", "container"), _flag_cases(), ids=[f"{module}:{c['name']}" for module, c in _flag_cases()]
)
def test_every_manifest_env_var_is_read_by_the_service(module: str, container: dict[str, Any]) -> None:
    """An env var is either a flag's documented fallback, an OTEL_* setting, or named in the service's code."""
    from_help = set(HELP_ENV.findall(_help(module)))
    source = "\n".join(path.read_text() for path in (REPO_ROOT / module.replace(".", "/")).rglob("*.py"))
    for variable in (env["name"] for env in container.get("env", [])):
        read = variable in from_help or variable.startswith("OTEL_") or f'"{variable}"' in source
        assert read, f"{module} does not read {variable}"


# --- ports, probes, Services, NetworkPolicies ----------------------------------------------------------------------


@pytest.mark.parametrize("workload", _workloads(), ids=lambda w: w["metadata"]["name"])
def test_ports_and_probes_match_the_flags(workload: dict[str, Any]) -> None:
    (container,) = _containers(workload)
    flags = _flag_values(container)
    ports = _container_ports(container)

    assert ports["grpc"] == _port_of(flags["--grpc-address"])
    assert ports["metrics"] == _port_of(flags["--metrics-address"])
    assert ports["health"] == _port_of(flags["--health-address"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]


def _pods_selected(selector: dict[str, str]) -> list[dict[str, Any]]:
    return [
        workload
        for workload in _workloads()
        if selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
    ]


def test_every_service_selects_a_workload_with_its_target_port() -> None:
    services = [doc for doc in kustomization_documents() if doc["kind"] == "Service"]

    assert {doc["metadata"]["name"] for doc in services} >= {"prepull-scheduler", "prepull-nodeimage-sync"}
    for service in services:
        (workload,) = _pods_selected(service["spec"]["selector"])
        ports = _container_ports(_containers(workload)[0])
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{service['metadata']['name']}: no port {port['targetPort']}"


def test_every_network_policy_opens_ports_its_pods_have() -> None:
    policies = [doc for doc in kustomization_documents() if doc["kind"] == "NetworkPolicy"]

    assert len(policies) == len(_workloads())
    for policy in policies:
        (workload,) = _pods_selected(policy["spec"]["podSelector"]["matchLabels"])
        ports = _container_ports(_containers(workload)[0])
        for rule in policy["spec"]["ingress"]:
            for port in rule["ports"]:
                assert port["port"] in ports


def test_pullers_may_reach_the_scheduler_and_nodeimage_sync_grpc_ports() -> None:
    puller_labels = _workload_named("prepull-puller")["spec"]["template"]["metadata"]["labels"]
    for name in ("prepull-scheduler", "prepull-nodeimage-sync"):
        (policy,) = [
            doc
            for doc in kustomization_documents()
            if doc["kind"] == "NetworkPolicy" and doc["metadata"]["name"] == name
        ]
        reachable = [
            rule
            for rule in policy["spec"]["ingress"]
            if any(port["port"] == "grpc" for port in rule["ports"])
            and any(
                peer.get("podSelector", {}).get("matchLabels", {}).items() <= puller_labels.items()
                and "namespaceSelector" not in peer
                for peer in rule.get("from", [])
            )
        ]
        assert reachable, f"pullers cannot reach {name}'s gRPC port"


# --- the puller's node identity, socket and tokens -------------------------------------------------------------------


def test_puller_gets_its_node_name_socket_and_one_token_per_audience() -> None:
    puller = _workload_named("prepull-puller")
    pod = puller["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    flags = _flag_values(container)
    env = {item["name"]: item for item in container["env"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}

    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert {"operator": "Exists"} in pod["tolerations"]
    socket = flags["--cri-socket"].removeprefix("unix://")
    (socket_volume,) = [name for name, path in mounts.items() if socket.startswith(path + "/")]
    assert socket.startswith(volumes[socket_volume]["hostPath"]["path"] + "/")
    (token_volume,) = [volume for volume in volumes.values() if "projected" in volume]
    sources = [source["serviceAccountToken"] for source in token_volume["projected"]["sources"]]
    token_mount = mounts[token_volume["name"]]
    assert {source["audience"] for source in sources} == set(PULLER_AUDIENCES)
    for source in sources:
        assert 600 <= source["expirationSeconds"] <= 86400
        assert flags[PULLER_AUDIENCES[source["audience"]]] == f"{token_mount}/{source['path']}"


def test_puller_peers_are_the_services_in_deploy() -> None:
    flags = _flag_values(_containers(_workload_named("prepull-puller"))[0])
    for flag, name in (("--scheduler-address", "prepull-scheduler"), ("--inventory-address", "prepull-nodeimage-sync")):
        (service,) = [
            doc for doc in kustomization_documents() if doc["kind"] == "Service" and doc["metadata"]["name"] == name
        ]
        (port,) = service["spec"]["ports"]
        host = flags[flag].removeprefix("dns:///")
        assert host == f"{name}.{rbac_table.SERVICE_NAMESPACE}.svc:{port['port']}"


# --- security, resources, availability -------------------------------------------------------------------------------


@pytest.mark.parametrize("workload", _workloads(), ids=lambda w: w["metadata"]["name"])
def test_containers_are_locked_down_and_sized(workload: dict[str, Any]) -> None:
    pod = workload["spec"]["template"]["spec"]
    runs_as_root = workload["metadata"]["name"] == "prepull-puller"
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is not runs_as_root
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    for container in _containers(workload):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert not security.get("privileged")
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}


def test_only_the_puller_mounts_host_paths() -> None:
    for workload in _workloads():
        host_paths = [
            volume for volume in workload["spec"]["template"]["spec"].get("volumes", []) if "hostPath" in volume
        ]
        assert bool(host_paths) == (workload["metadata"]["name"] == "prepull-puller")


@pytest.mark.parametrize("name", LEADER_ELECTED)
def test_controllers_run_two_leader_elected_replicas(name: str) -> None:
    workload = _workload_named(name)
    (container,) = _containers(workload)

    assert workload["kind"] == "Deployment"
    assert workload["spec"]["replicas"] == 2
    assert "--leader-elect" in container["args"]
    env = {item["name"]: item for item in container["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_disruption_budgets_allow_drains() -> None:
    """With every selected pod Ready, a budget must still allow evicting one: maxUnavailable 1 of 2 replicas.

    nodeimage_sync has none on purpose: only its leader is ever Ready, so any budget would block draining the
    leader's node (deploy/workloads/nodeimage-sync.yaml explains).
    """
    budgets = [doc for doc in kustomization_documents() if doc["kind"] == "PodDisruptionBudget"]

    assert budgets
    for budget in budgets:
        (workload,) = _pods_selected(budget["spec"]["selector"]["matchLabels"])
        assert budget["spec"]["maxUnavailable"] == 1
        assert "minAvailable" not in budget["spec"]
        assert workload["spec"]["replicas"] >= 2
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert not _pods_selected_by_any(budgets, "prepull-nodeimage-sync")


def _pods_selected_by_any(budgets: list[dict[str, Any]], workload_name: str) -> bool:
    labels = _workload_named(workload_name)["spec"]["template"]["metadata"]["labels"]
    return any(budget["spec"]["selector"]["matchLabels"].items() <= labels.items() for budget in budgets)


# --- the Grafana dashboard -------------------------------------------------------------------------------------------


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def listed_dashboard_series() -> list[str]:
    """The series names deploy/observability/grafana-dashboard-series.txt lists (the dashboard's contract)."""
    lines = (line.strip() for line in DASHBOARD_SERIES.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _exposed_series(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry's metrics can expose (counters with _total, histograms' _bucket/_sum/_count)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}
    return {family.name + suffix for family in registry.collect() for suffix in suffixes.get(family.type, ("",))}


def test_dashboard_series_list_is_exactly_what_its_queries_use() -> None:
    used = {name for query in _dashboard_queries() for name in SERIES_NAME.findall(query)}
    listed = listed_dashboard_series()

    assert sorted(listed) == sorted(used)
    assert len(listed) == len(set(listed))


def test_dashboard_series_are_defined_by_the_services() -> None:
    nodeimage_sync = CollectorRegistry()
    NodeImageSyncMetrics(nodeimage_sync)
    puller = CollectorRegistry()
    PullerMetrics(puller)
    exposed = _exposed_series(SchedulerMetrics().registry) | _exposed_series(nodeimage_sync) | _exposed_series(puller)

    assert sorted(set(listed_dashboard_series()) - exposed) == []


def test_manifest_files_are_plain_yaml_documents() -> None:
    """deploy/workloads and deploy/admission use no kustomize transformations, so each file is what is applied."""
    for path in sorted([*(DEPLOY_DIR / "workloads").glob("*.yaml"), *(DEPLOY_DIR / "admission").glob("*.yaml")]):
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        assert documents, f"{path} is empty"
        assert all({"apiVersion", "kind", "metadata"} <= doc.keys() for doc in documents)


def _relative(path: Path) -> str:
    return str(path.relative_to(DEPLOY_DIR))


def test_workload_and_admission_files_are_in_the_default_kustomization() -> None:
    resources = set(yaml.safe_load((DEPLOY_DIR / "kustomization.yaml").read_text())["resources"])
    files = {_relative(path) for folder in ("workloads", "admission") for path in (DEPLOY_DIR / folder).glob("*.yaml")}

    assert files <= resources
    assert not any(resource.startswith(("examples/", "observability/")) for resource in resources)
