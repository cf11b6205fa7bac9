"""deploy/rbac/ grants each prepull service exactly the API calls docs/rbac.md lists, on a real kube-apiserver.

The tables of docs/rbac.md are parsed (tests/support/rbac_table.py), so the page people read is what is checked:
every "Allowed calls" row answers yes to `kubectl auth can-i --as=<service account>`, every "Denied on purpose" row
answers no, nothing outside the tables is allowed (SubjectAccessReviews over a grid of resources, verbs and
namespaces), and the user roles reach namespace `view`/`edit` users through aggregation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import kubernetes.client
import pytest

from localcluster.process import wait_until
from tests.support import rbac_table
from tests.support.deploy_manifests import Kubectl, apply_deploy, kustomization_documents
from tests.support.rbac_table import Permission

ALLOWED = rbac_table.allowed_permissions()
DENIED = rbac_table.denied_permissions()
USER_ROLES = rbac_table.user_roles()
SERVICE_ACCOUNTS = rbac_table.service_accounts()
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
# Resources no service should touch, checked alongside every resource the tables mention.
EXTRA_RESOURCES = (
    ("", "configmaps"),
    ("", "namespaces"),
    ("", "serviceaccounts"),
    ("", "serviceaccounts/token"),
    ("", "pods/exec"),
    ("", "nodes/proxy"),
    ("", "nodes/status"),
    ("apps", "daemonsets"),
    ("apps", "deployments"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("rbac.authorization.k8s.io", "roles"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
)
NAMESPACES_CHECKED = (None, rbac_table.SERVICE_NAMESPACE, "default")
SERVICE_ACCOUNT_GROUPS = ("system:serviceaccounts", f"system:serviceaccounts:{rbac_table.SERVICE_NAMESPACE}")
AGGREGATION_TIMEOUT_SECONDS = 90.0


def _id(permission: Permission) -> str:
    scope = permission.namespace or "cluster"
    group = permission.group or "core"
    return f"{permission.subject}:{permission.verb}:{permission.resource}.{group}@{scope}"


def _resource_arg(permission: Permission) -> str:
    return permission.base_resource if not permission.group else f"{permission.base_resource}.{permission.group}"


def can_i(cluster: Kubectl, permission: Permission, user: str) -> bool:
    """`kubectl auth can-i` for one permission as `user` (impersonated by the admin)."""
    args = ["auth", "can-i", permission.verb, _resource_arg(permission), f"--as={user}"]
    if permission.subresource:
        args.append(f"--subresource={permission.subresource}")
    args += ["--all-namespaces"] if permission.namespace is None else ["--namespace", permission.namespace]
    result = cluster.kubectl(*args, check=False)
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, f"kubectl auth can-i failed: {result.stderr}"
    return answer == "yes"


@pytest.fixture(scope="module")
def installed(control_plane: Kubectl) -> Kubectl:
    """The session's control plane with deploy/ applied."""
    apply_deploy(control_plane)
    return control_plane


# --- the manifests and the document agree (no apiserver needed) ----------------------------------------------------


def _rules_as_permissions(rules: Iterable[dict[str, Any]], subject: str, namespace: str | None) -> set[Permission]:
    return {
        Permission(subject, group, resource, verb, namespace)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def _granted_to_service_accounts(documents: list[dict[str, Any]]) -> set[Permission]:
    """Expand every binding of a prepull-system ServiceAccount in the manifests into single permissions."""
    roles = {(doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc for doc in documents}
    granted: set[Permission] = set()
    for binding in documents:
        if binding["kind"] not in {"ClusterRoleBinding", "RoleBinding"}:
            continue
        namespace = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        role = roles[(ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])]
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount" and subject["namespace"] == rbac_table.SERVICE_NAMESPACE
            granted |= _rules_as_permissions(role["rules"], subject["name"], namespace)
    return granted


def test_manifests_grant_exactly_the_documented_service_calls() -> None:
    granted = _granted_to_service_accounts(kustomization_documents())
    documented = set(ALLOWED)
    assert sorted(map(_id, granted - documented)) == [], "granted in deploy/rbac/ but not in docs/rbac.md"
    assert sorted(map(_id, documented - granted)) == [], "in docs/rbac.md but not granted by deploy/rbac/"
    assert not set(DENIED) & granted


def test_manifests_define_the_documented_service_accounts() -> None:
    accounts = [
        doc["metadata"]["name"]
        for doc in kustomization_documents()
        if doc["kind"] == "ServiceAccount" and doc["metadata"]["namespace"] == rbac_table.SERVICE_NAMESPACE
    ]
    assert accounts == SERVICE_ACCOUNTS


def test_user_roles_match_the_document() -> None:
    cluster_roles = {doc["metadata"]["name"]: doc for doc in kustomization_documents() if doc["kind"] == "ClusterRole"}
    for role in USER_ROLES:
        manifest = cluster_roles[role.cluster_role]
        assert _rules_as_permissions(manifest["rules"], role.cluster_role, None) == set(role.permissions)
        labels = manifest["metadata"].get("labels", {})
        aggregated = {
            key.removeprefix("rbac.authorization.k8s.io/aggregate-to-") for key in labels if "aggregate-to-" in key
        }
        assert aggregated == set(role.aggregated_into)


# --- the real apiserver answers as documented ----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("permission", ALLOWED, ids=_id)
def test_documented_call_is_allowed(installed: Kubectl, permission: Permission) -> None:
    assert can_i(installed, permission, rbac_table.service_account_user(permission.subject))


@pytest.mark.integration
@pytest.mark.parametrize("permission", DENIED, ids=_id)
def test_call_denied_on_purpose_is_denied(installed: Kubectl, permission: Permission) -> None:
    assert not can_i(installed, permission, rbac_table.service_account_user(permission.subject))


def _documented_allows(subject: str, group: str, resource: str, verb: str, namespace: str | None) -> bool:
    return any(
        (p.subject, p.group, p.resource, p.verb) == (subject, group, resource, verb)
        and (p.namespace is None or p.namespace == namespace)
        for p in ALLOWED
    )


def _access_review_allows(api: kubernetes.client.ApiClient, user: str, permission: Permission) -> bool:
    body = {
        "spec": {
            "user": user,
            "groups": [*SERVICE_ACCOUNT_GROUPS, "system:authenticated"],
            "resourceAttributes": {
                "group": permission.group,
                "resource": permission.base_resource,
                "subresource": permission.subresource,
                "verb": permission.verb,
                "namespace": permission.namespace or "",
            },
        }
    }
    review = kubernetes.client.AuthorizationV1Api(api).create_subject_access_review(body)
    return bool(review.status.allowed)


def _grid(subject: str) -> Iterator[Permission]:
    """Every (resource, verb, namespace) worth asking about for one service account."""
    resources = {(p.group, p.resource) for p in [*ALLOWED, *DENIED]} | set(EXTRA_RESOURCES) | {("", "secrets")}
    for group, resource in sorted(resources):
        for verb in VERBS:
            for namespace in NAMESPACES_CHECKED:
                yield Permission(subject, group, resource, verb, namespace)


@pytest.mark.integration
@pytest.mark.parametrize("account", SERVICE_ACCOUNTS)
def test_service_account_can_do_nothing_else(
    installed: Kubectl, admin_api: kubernetes.client.ApiClient, account: str
) -> None:
    user = rbac_table.service_account_user(account)
    wrong = [
        f"{_id(p)} answered {allowed}"
        for p in _grid(account)
        if (allowed := _access_review_allows(admin_api, user, p))
        != _documented_allows(p.subject, p.group, p.resource, p.verb, p.namespace)
    ]
    assert wrong == []


# --- roles for users ---------------------------------------------------------------------------------------------


@pytest.fixture
def user_name(installed: Kubectl) -> Iterator[str]:
    """A made-up user name, with any ClusterRoleBinding named after it deleted afterwards."""
    name = f"user-{uuid.uuid4().hex[:8]}"
    yield name
    installed.kubectl("delete", "clusterrolebinding", name, "--ignore-not-found")


@pytest.mark.integration
@pytest.mark.parametrize("role", USER_ROLES, ids=lambda role: role.cluster_role)
def test_user_role_grants_its_documented_calls(installed: Kubectl, user_name: str, role: rbac_table.UserRole) -> None:
    installed.kubectl(
        "create", "clusterrolebinding", user_name, f"--clusterrole={role.cluster_role}", f"--user={user_name}"
    )
    denied = [_id(p) for p in role.permissions if not can_i(installed, p, user_name)]
    assert denied == []
    granted_verbs = {p.verb for p in role.permissions}
    unlisted = [
        Permission(role.cluster_role, p.group, p.resource, verb, None)
        for p in role.permissions
        for verb in VERBS
        if verb not in granted_verbs
    ]
    assert [_id(p) for p in unlisted if can_i(installed, p, user_name)] == []


def _wait_for_aggregation(cluster: Kubectl, permission: Permission, user: str) -> None:
    """Poll until kube-controller-manager has folded prepull's aggregate roles into the built-in ones."""
    try:
        wait_until(lambda: can_i(cluster, permission, user), timeout=AGGREGATION_TIMEOUT_SECONDS, interval=1.0)
    except TimeoutError:
        pytest.fail(
            f"{user} never got {_id(permission)}: the built-in view/edit ClusterRoles did not receive prepull's "
            "aggregated rules (kube-controller-manager must run clusterrole-aggregation-controller)"
        )


def _in_namespace(permissions: Iterable[Permission], namespace: str) -> list[Permission]:
    return [Permission(p.subject, p.group, p.resource, p.verb, namespace) for p in permissions]


@pytest.mark.integration
def test_namespace_view_and_edit_users_get_pull_jobs_through_aggregation(
    installed: Kubectl, kube_namespace: str
) -> None:
    viewer, editor = f"viewer-{kube_namespace}", f"editor-{kube_namespace}"
    installed.kubectl("create", "rolebinding", "v", "--clusterrole=view", f"--user={viewer}", "-n", kube_namespace)
    installed.kubectl("create", "rolebinding", "e", "--clusterrole=edit", f"--user={editor}", "-n", kube_namespace)
    (view_role,) = [role for role in USER_ROLES if "view" in role.aggregated_into]
    (edit_role,) = [role for role in USER_ROLES if "edit" in role.aggregated_into]
    view_calls = _in_namespace(view_role.permissions, kube_namespace)
    edit_calls = _in_namespace(edit_role.permissions, kube_namespace)
    _wait_for_aggregation(installed, view_calls[0], viewer)
    _wait_for_aggregation(installed, edit_calls[0], editor)

    assert [_id(p) for p in view_calls if not can_i(installed, p, viewer)] == []
    assert [_id(p) for p in edit_calls if can_i(installed, p, viewer)] == []
    assert [_id(p) for p in [*view_calls, *edit_calls] if not can_i(installed, p, editor)] == []
    assert [_id(p) for p in _in_namespace(view_role.permissions, "default") if can_i(installed, p, viewer)] == []

    job = {"apiVersion": "prepull.io/v1beta1", "kind": "ImagePullJob", "metadata": {"name": "by-editor"}}
    job["spec"] = {"image": "nginx:1.25"}
    installed.kubectl("create", "-n", kube_namespace, f"--as={editor}", "-f", "-", input=json.dumps(job))
    listed = installed.kubectl("get", "ipj", "-n", kube_namespace, f"--as={viewer}", "-o", "name").stdout.split()
    assert listed == ["imagepulljob.prepull.io/by-editor"]
