"""TokenReview and SubjectAccessReview against the real API server: who a token belongs to, for which
audience and node, what the answers cost, and what RBAC says."""

from __future__ import annotations

import uuid

import kubernetes.client
import pytest

from localcluster.identity import CREDENTIALS_AUDIENCE, INVENTORY_AUDIENCE, PULLER_NAMESPACE, PULLER_SERVICE_ACCOUNT
from localcluster.process import wait_until
from services.shared.auth.errors import ReviewUnavailable, Unauthenticated
from services.shared.auth.subjectaccess import ResourceAccess, SubjectAccessReviewer
from services.shared.auth.tokenreview import TokenReviewAuthenticator
from tests.integration.shared_auth.conftest import service_account_token

pytestmark = pytest.mark.integration


class CountingApiClient(kubernetes.client.ApiClient):  # type: ignore[misc]  # untyped library
    """A real client that counts the requests it sends (to see what the caches save)."""

    requests = 0

    def call_api(self, *args, **kwargs):
        self.requests += 1
        return super().call_api(*args, **kwargs)


@pytest.fixture
def counting_api(reviewer_api):
    with CountingApiClient(reviewer_api.configuration) as api:
        yield api


def forged(token: str) -> str:
    """The same token with its signature changed: right shape, right claims, wrong signature."""
    head, _, signature = token.rpartition(".")
    return f"{head}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"


def test_a_pod_bound_token_names_its_service_account_pod_and_node(reviewer_api, node_identity_factory):
    identity = node_identity_factory()

    caller = TokenReviewAuthenticator(reviewer_api).authenticate(
        identity.token(CREDENTIALS_AUDIENCE), CREDENTIALS_AUDIENCE
    )

    assert caller.username == f"system:serviceaccount:{PULLER_NAMESPACE}:{PULLER_SERVICE_ACCOUNT}"
    assert caller.service_account == (PULLER_NAMESPACE, PULLER_SERVICE_ACCOUNT)
    assert (caller.node_name, caller.pod_name) == (identity.node, identity.pod_name)
    assert caller.pod_uid and caller.node_uid and caller.uid
    assert caller.audiences == (CREDENTIALS_AUDIENCE,)
    assert "system:serviceaccounts" in caller.groups


def test_wrong_audience_and_forged_tokens_are_refused(reviewer_api, node_identity_factory):
    identity = node_identity_factory()
    authenticator = TokenReviewAuthenticator(reviewer_api)
    token = identity.token(CREDENTIALS_AUDIENCE)

    with pytest.raises(Unauthenticated, match=r"not issued for audience 'prepull\.io/inventory'"):
        authenticator.authenticate(token, INVENTORY_AUDIENCE)
    with pytest.raises(Unauthenticated) as bad_signature:
        authenticator.authenticate(forged(token), CREDENTIALS_AUDIENCE)
    assert bad_signature.value.detail, "the API server's reason is kept for the log"
    with pytest.raises(Unauthenticated, match="malformed"):
        authenticator.authenticate("x" * 20_000, CREDENTIALS_AUDIENCE)


def test_an_api_server_token_is_not_ours(control_plane, reviewer_api, other_service_account_token):
    token = other_service_account_token(control_plane.service_account_issuer)

    with pytest.raises(Unauthenticated):
        TokenReviewAuthenticator(reviewer_api).authenticate(token, CREDENTIALS_AUDIENCE)


def test_successes_are_cached_by_digest_and_refusals_are_not(counting_api, node_identity_factory):
    identity = node_identity_factory()
    token = identity.token(CREDENTIALS_AUDIENCE)
    authenticator = TokenReviewAuthenticator(counting_api, cache_ttl_seconds=60)

    first = authenticator.authenticate(token, CREDENTIALS_AUDIENCE)
    again = authenticator.authenticate(token, CREDENTIALS_AUDIENCE)
    assert again == first
    assert counting_api.requests == 1
    assert all(token not in repr(key) for key in authenticator._cache._entries)

    for _ in range(2):
        with pytest.raises(Unauthenticated):
            authenticator.authenticate(forged(token), CREDENTIALS_AUDIENCE)
    assert counting_api.requests == 3

    uncached = TokenReviewAuthenticator(counting_api, cache_ttl_seconds=0)
    uncached.authenticate(token, CREDENTIALS_AUDIENCE)
    uncached.authenticate(token, CREDENTIALS_AUDIENCE)
    assert counting_api.requests == 5


def test_a_server_without_rbac_for_tokenreview_is_unavailable_not_unauthenticated(
    unprivileged_api, node_identity_factory
):
    identity = node_identity_factory()

    with pytest.raises(ReviewUnavailable) as raised:
        TokenReviewAuthenticator(unprivileged_api).authenticate(
            identity.token(CREDENTIALS_AUDIENCE), CREDENTIALS_AUDIENCE
        )

    assert "forbidden" in raised.value.detail.lower()
    assert "forbidden" not in str(raised.value).lower()


def test_subject_access_review_follows_rbac(admin_api, reviewer_api, kube_namespace):
    # A ServiceAccount of its own, bound to nothing yet: RBAC that other tests applied cannot reach it.
    name = f"sar-{uuid.uuid4().hex[:6]}"
    kubernetes.client.CoreV1Api(admin_api).create_namespaced_service_account(
        kube_namespace, {"metadata": {"name": name}}
    )
    token = service_account_token(admin_api, kube_namespace, name, [INVENTORY_AUDIENCE])
    caller = TokenReviewAuthenticator(reviewer_api).authenticate(token, INVENTORY_AUDIENCE)
    list_pods = ResourceAccess("list", "pods", namespace=kube_namespace)
    get_nodeimages = ResourceAccess("get", "nodeimages", "prepull.io")
    fresh = SubjectAccessReviewer(reviewer_api, allowed_ttl_seconds=0, denied_ttl_seconds=0)
    assert not fresh.allowed(caller, list_pods)
    assert not fresh.allowed(caller, get_nodeimages)

    grant_list_pods(admin_api, kube_namespace, caller.username)

    wait_until(lambda: fresh.allowed(caller, list_pods), timeout=60, interval=0.5, what="the RoleBinding to apply")
    assert not fresh.allowed(caller, get_nodeimages)
    assert not fresh.allowed(caller, ResourceAccess("delete", "pods", namespace=kube_namespace))


def test_access_answers_are_cached_briefly(admin_api, counting_api, node_identity_factory, kube_namespace):
    identity = node_identity_factory()
    caller = TokenReviewAuthenticator(counting_api).authenticate(identity.token(INVENTORY_AUDIENCE), INVENTORY_AUDIENCE)
    reviewer = SubjectAccessReviewer(counting_api, allowed_ttl_seconds=60, denied_ttl_seconds=60)
    access = ResourceAccess("list", "pods", namespace=kube_namespace)
    before = counting_api.requests

    assert not reviewer.allowed(caller, access)
    assert not reviewer.allowed(caller, access)

    assert counting_api.requests == before + 1


def grant_list_pods(api: kubernetes.client.ApiClient, namespace: str, username: str) -> None:
    """A Role allowing `list pods` in `namespace`, bound to the ServiceAccount `username`."""
    _, _, sa_namespace, sa_name = username.split(":")
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        {"metadata": {"name": "list-pods"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]},
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "list-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "list-pods"},
            "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}],
        },
    )
