"""The manifests in deploy/ are accepted by a real kube-apiserver, and the puller admission policy really holds.

`kubectl apply --dry-run=server` runs each kustomization through the apiserver's full validation and admission
(schemas, CEL compilation of the ValidatingAdmissionPolicies, PodSpec rules) without changing anything. The
puller policy is then exercised for real: with deploy/ applied, a puller token bound to a Pod on node A may write
node A's NodeImage status and nothing else, and a puller token with no node binding may write none. The example
registry/all-nodes policy is exercised too, bound to one test namespace only so the rest of the session is
unaffected.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from localcluster import identity, nodes
from localcluster.controlplane import ControlPlane
from localcluster.process import wait_until
from tests.support import rbac_table
from tests.support.deploy_manifests import DEPLOY_DIR, apply_deploy

pytestmark = pytest.mark.integration

OBSERVABILITY_DIR = DEPLOY_DIR / "observability"
EXAMPLE_ADMISSION_DIR = DEPLOY_DIR / "examples" / "admission"
PULLER_USER = rbac_table.service_account_user("prepull-puller")
GROUP, VERSION = "prepull.io", "v1beta1"
POLICY_TIMEOUT_SECONDS = 60.0
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
TOKEN_SECONDS = 600
OWN_NODE_DENIAL = "may write only NodeImage"
NO_NODE_DENIAL = "this token carries no node name"
STATUS_PATCH = {"status": {"desired": 0}}


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane) -> ControlPlane:
    """deploy/ applied for real (namespace, CRDs, RBAC, the puller policy, the workloads; nothing runs them)."""
    apply_deploy(control_plane)
    return control_plane


def _dry_run(cluster: ControlPlane, directory: Path) -> str:
    result = cluster.kubectl("apply", "--dry-run=server", "-k", str(directory))
    return result.stdout


# --- every kustomization is accepted by the apiserver ----------------------------------------------------------


def test_default_kustomization_applies_on_the_server(installed: ControlPlane) -> None:
    output = _dry_run(installed, DEPLOY_DIR)

    for expected in (
        "deployment.apps/prepull-scheduler",
        "deployment.apps/prepull-nodeimage-sync",
        "daemonset.apps/prepull-puller",
        "validatingadmissionpolicy.admissionregistration.k8s.io/prepull-puller-own-nodeimage",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/prepull-puller-own-nodeimage",
        "poddisruptionbudget.policy/prepull-scheduler",
        "networkpolicy.networking.k8s.io/prepull-scheduler",
    ):
        assert expected in output


def test_observability_example_applies_on_the_server(installed: ControlPlane) -> None:
    output = _dry_run(installed, OBSERVABILITY_DIR)

    assert "deployment.apps/prepull-otel-collector" in output
    assert "deployment.apps/prepull-jaeger" in output
    assert "configmap/prepull-grafana-dashboard" in output


def test_example_admission_policy_applies_on_the_server(installed: ControlPlane) -> None:
    output = _dry_run(installed, EXAMPLE_ADMISSION_DIR)

    assert "validatingadmissionpolicy.admissionregistration.k8s.io/prepull-job-targets-and-registries" in output


# --- the puller may write only its own node's NodeImage ------------------------------------------------------------


def _create_node_image(api: kubernetes.client.ApiClient, name: str) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NodeImage", "metadata": {"name": name}, "spec": {}}
    kubernetes.client.CustomObjectsApi(api).create_cluster_custom_object(GROUP, VERSION, "nodeimages", body)


def _delete_node_image(api: kubernetes.client.ApiClient, name: str) -> None:
    try:
        kubernetes.client.CustomObjectsApi(api).delete_cluster_custom_object(GROUP, VERSION, "nodeimages", name)
    except ApiException as error:
        if error.status != HTTP_NOT_FOUND:
            raise


def _patch_status(api: kubernetes.client.ApiClient, name: str) -> ApiException | None:
    """Merge-patch a NodeImage's status; the refusal, or None when it was accepted."""
    try:
        kubernetes.client.CustomObjectsApi(api).patch_cluster_custom_object_status(
            GROUP, VERSION, "nodeimages", name, STATUS_PATCH
        )
    except ApiException as error:
        return error
    return None


def _refused_by_policy(api: kubernetes.client.ApiClient, name: str, phrase: str) -> Callable[[], bool]:
    """A probe for wait_until: the apiserver loads a new policy a moment after it is created."""

    def probe() -> bool:
        refusal = _patch_status(api, name)
        return refusal is not None and refusal.status == HTTP_FORBIDDEN and phrase in str(refusal.body)

    return probe


@pytest.fixture
def two_nodes(installed: ControlPlane, admin_api: kubernetes.client.ApiClient) -> Iterator[list[identity.NodeIdentity]]:
    """Nodes A and B with NodeImages; A's puller identity holds a Pod-bound token for the Kubernetes API."""
    names = [f"node-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    made: list[identity.NodeIdentity] = []
    try:
        for name in names:
            made.append(
                identity.provision_node(
                    admin_api,
                    state_dir=installed.state_dir,
                    node=name,
                    audiences=(installed.service_account_issuer,),
                    expiration_seconds=TOKEN_SECONDS,
                )
            )
            _create_node_image(admin_api, name)
        yield made
    finally:
        core = kubernetes.client.CoreV1Api(admin_api)
        for each in made:
            each.stop()
            _delete_node_image(admin_api, each.node)
            try:
                core.delete_namespaced_pod(each.pod_name, identity.PULLER_NAMESPACE, grace_period_seconds=0)
            except ApiException as error:
                if error.status != HTTP_NOT_FOUND:
                    raise
            nodes.delete_node(admin_api, each.node)


def test_node_bound_puller_writes_only_its_own_node_image_status(
    installed: ControlPlane, admin_api: kubernetes.client.ApiClient, two_nodes: list[identity.NodeIdentity]
) -> None:
    node_a, node_b = two_nodes
    with installed.api_client_for_token(node_a.token(installed.service_account_issuer)) as as_puller_of_a:
        wait_until(
            _refused_by_policy(as_puller_of_a, node_b.node, OWN_NODE_DENIAL),
            timeout=POLICY_TIMEOUT_SECONDS,
            interval=0.5,
            what="the puller policy to refuse node A's puller writing node B's NodeImage",
        )
        refusal = _patch_status(as_puller_of_a, node_b.node)
        accepted_own = _patch_status(as_puller_of_a, node_a.node)

    assert refusal is not None and refusal.status == HTTP_FORBIDDEN
    assert "prepull-puller-own-nodeimage" in str(refusal.body)
    assert f"prepull-puller of node {node_a.node} may write only NodeImage {node_a.node}, not {node_b.node}" in str(
        refusal.body
    )
    assert accepted_own is None
    written: dict[str, Any] = kubernetes.client.CustomObjectsApi(admin_api).get_cluster_custom_object_status(
        GROUP, VERSION, "nodeimages", node_a.node
    )
    assert written["status"]["desired"] == 0


def test_puller_token_without_node_binding_writes_no_node_image(
    installed: ControlPlane, admin_api: kubernetes.client.ApiClient, two_nodes: list[identity.NodeIdentity]
) -> None:
    node_a, _ = two_nodes
    unbound = kubernetes.client.CoreV1Api(admin_api).create_namespaced_service_account_token(
        identity.PULLER_SERVICE_ACCOUNT,
        identity.PULLER_NAMESPACE,
        kubernetes.client.AuthenticationV1TokenRequest(
            spec=kubernetes.client.V1TokenRequestSpec(
                audiences=[installed.service_account_issuer], expiration_seconds=TOKEN_SECONDS
            )
        ),
    )
    with installed.api_client_for_token(unbound.status.token) as as_unbound_puller:
        wait_until(
            _refused_by_policy(as_unbound_puller, node_a.node, NO_NODE_DENIAL),
            timeout=POLICY_TIMEOUT_SECONDS,
            interval=0.5,
            what="the puller policy to refuse a puller token without a node",
        )
        refusal = _patch_status(as_unbound_puller, node_a.node)

    assert refusal is not None and refusal.status == HTTP_FORBIDDEN
    assert NO_NODE_DENIAL in str(refusal.body)


def test_policy_leaves_other_writers_alone(
    installed: ControlPlane, admin_api: kubernetes.client.ApiClient, two_nodes: list[identity.NodeIdentity]
) -> None:
    node_a, node_b = two_nodes
    with installed.api_client_for_token(node_a.token(installed.service_account_issuer)) as as_puller_of_a:
        wait_until(
            _refused_by_policy(as_puller_of_a, node_b.node, OWN_NODE_DENIAL),
            timeout=POLICY_TIMEOUT_SECONDS,
            interval=0.5,
            what="the puller policy to be loaded",
        )

    assert _patch_status(admin_api, node_b.node) is None


def test_puller_cannot_get_secrets(installed: ControlPlane) -> None:
    for scope in (["--all-namespaces"], ["--namespace", rbac_table.SERVICE_NAMESPACE]):
        result = installed.kubectl("auth", "can-i", "get", "secrets", f"--as={PULLER_USER}", *scope, check=False)
        assert result.stdout.strip() == "no", result.stderr


# --- the example policy: who may target all nodes, which registries ----------------------------------------------


def _example_documents() -> list[dict[str, Any]]:
    text = (EXAMPLE_ADMISSION_DIR / "job-targets-and-registries.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture
def example_policy_in(
    installed: ControlPlane, admin_api: kubernetes.client.ApiClient
) -> Iterator[Callable[[str], None]]:
    """Install the example policy and its parameters, bound to namespaces labelled for this test only."""
    label = f"prepull-example-policy-{uuid.uuid4().hex[:8]}"
    documents = {doc["kind"]: doc for doc in _example_documents()}
    binding = documents["ValidatingAdmissionPolicyBinding"]
    binding["metadata"]["name"] = label
    binding["spec"]["matchResources"] = {"namespaceSelector": {"matchLabels": {label: "true"}}}
    for kind in ("ConfigMap", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
        installed.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(documents[kind]))
    core = kubernetes.client.CoreV1Api(admin_api)

    def label_namespace(namespace: str) -> None:
        core.patch_namespace(namespace, {"metadata": {"labels": {label: "true"}}})

    try:
        yield label_namespace
    finally:
        for kind in ("ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy", "ConfigMap"):
            installed.kubectl("delete", "--ignore-not-found", "-f", "-", input=yaml.safe_dump(documents[kind]))


def _create_job(api: kubernetes.client.ApiClient, namespace: str, spec: dict[str, Any]) -> ApiException | None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ImagePullJob",
        "metadata": {"generateName": "example-policy-"},
        "spec": spec,
    }
    try:
        kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "imagepulljobs", body
        )
    except ApiException as error:
        return error
    return None


def test_example_policy_limits_all_node_jobs_and_registries(
    admin_api: kubernetes.client.ApiClient, kube_namespace: str, example_policy_in: Callable[[str], None]
) -> None:
    example_policy_in(kube_namespace)
    to_all_nodes = {"image": "ubuntu:latest"}

    def all_nodes_refused() -> bool:
        refusal = _create_job(admin_api, kube_namespace, to_all_nodes)
        return refusal is not None and "may not target all nodes" in str(refusal.body)

    wait_until(all_nodes_refused, timeout=POLICY_TIMEOUT_SECONDS, interval=0.5, what="the example policy to be loaded")
    selected = {"selector": {"names": ["some-node"]}}
    other_registry = _create_job(admin_api, kube_namespace, {"image": "registry.example.com:5000/app:1", **selected})

    assert _create_job(admin_api, kube_namespace, {"image": "ubuntu:latest", **selected}) is None
    assert _create_job(admin_api, kube_namespace, {"image": "registry.k8s.io/pause:3.10", **selected}) is None
    assert other_registry is not None and other_registry.status == HTTP_FORBIDDEN
    assert "not allowed: registry.example.com:5000" in str(other_registry.body)
