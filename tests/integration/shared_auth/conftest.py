"""Identities for the authentication tests, made in the session's real control plane.

Our servers call TokenReview and SubjectAccessReview as their own ServiceAccount, which the deployment binds to
the built-in `system:auth-delegator` ClusterRole; `reviewer_api` is a client for exactly such an account, so
the tests also prove that this binding is all the RBAC a server needs. `unprivileged_api` is an account with no
binding at all, to see what a server with missing RBAC does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from localcluster.controlplane import ControlPlane
from localcluster.process import wait_until

HTTP_NOT_FOUND = 404


def service_account_token(api: kubernetes.client.ApiClient, namespace: str, name: str, audiences: list[str]) -> str:
    """A fresh (not Pod-bound) token of ServiceAccount `namespace/name`; [] means the API server's audience."""
    request = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(audiences=audiences, expiration_seconds=3600)
    )
    response = kubernetes.client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request)
    token: str = response.status.token
    return token


@pytest.fixture(scope="module")
def auth_namespace(admin_api: kubernetes.client.ApiClient) -> Iterator[str]:
    """A namespace for this module's ServiceAccounts, deleted afterwards."""
    name = f"auth-{uuid.uuid4().hex[:8]}"
    core = kubernetes.client.CoreV1Api(admin_api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    _ignore_not_found(lambda: core.delete_namespace(name))


def _service_account(api: kubernetes.client.ApiClient, namespace: str, name: str) -> None:
    kubernetes.client.CoreV1Api(api).create_namespaced_service_account(namespace, {"metadata": {"name": name}})


@pytest.fixture(scope="module")
def reviewer_api(
    control_plane: ControlPlane, admin_api: kubernetes.client.ApiClient, auth_namespace: str
) -> Iterator[kubernetes.client.ApiClient]:
    """A client for a ServiceAccount bound to `system:auth-delegator`, as our servers run."""
    _service_account(admin_api, auth_namespace, "reviewer")
    binding = f"{auth_namespace}-reviewer-auth-delegator"
    rbac = kubernetes.client.RbacAuthorizationV1Api(admin_api)
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": binding},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:auth-delegator",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reviewer", "namespace": auth_namespace}],
        }
    )
    with control_plane.api_client_for_token(service_account_token(admin_api, auth_namespace, "reviewer", [])) as api:
        wait_until(lambda: _can_review(api), timeout=60, what="the auth-delegator binding to take effect")
        yield api
    _ignore_not_found(lambda: rbac.delete_cluster_role_binding(binding))


@pytest.fixture(scope="module")
def unprivileged_api(
    control_plane: ControlPlane, admin_api: kubernetes.client.ApiClient, auth_namespace: str
) -> Iterator[kubernetes.client.ApiClient]:
    """A client for a ServiceAccount with no RBAC at all (TokenReview is forbidden to it)."""
    _service_account(admin_api, auth_namespace, "nobody")
    with control_plane.api_client_for_token(service_account_token(admin_api, auth_namespace, "nobody", [])) as api:
        yield api


@pytest.fixture
def other_service_account_token(admin_api: kubernetes.client.ApiClient, auth_namespace: str) -> Callable[[str], str]:
    """Tokens of ServiceAccount `<auth_namespace>/client` (not the puller, not Pod-bound) for an audience."""
    _ignore_conflict(lambda: _service_account(admin_api, auth_namespace, "client"))
    return lambda audience: service_account_token(admin_api, auth_namespace, "client", [audience])


def _can_review(api: kubernetes.client.ApiClient) -> bool:
    body = kubernetes.client.V1TokenReview(spec=kubernetes.client.V1TokenReviewSpec(token="not-a-token"))
    try:
        kubernetes.client.AuthenticationV1Api(api).create_token_review(body)
    except ApiException:
        return False
    return True


def _ignore_not_found(call: Callable[[], object]) -> None:
    try:
        call()
    except ApiException as error:
        if error.status != HTTP_NOT_FOUND:
            raise


def _ignore_conflict(call: Callable[[], object]) -> None:
    try:
        call()
    except ApiException as error:
        if error.status != 409:
            raise
