"""Each simulated node's puller gets a real, Pod-bound identity: tokens that TokenReview ties to that node,
for the requested audience only, rewritten before they expire."""

from __future__ import annotations

import kubernetes.client
import pytest

from localcluster import identity
from localcluster.identity import CREDENTIALS_AUDIENCE, INVENTORY_AUDIENCE, NODE_NAME_EXTRA, POD_NAME_EXTRA
from localcluster.process import wait_until

pytestmark = pytest.mark.integration


def review(api: kubernetes.client.ApiClient, token: str, audience: str) -> kubernetes.client.V1TokenReviewStatus:
    body = kubernetes.client.V1TokenReview(spec=kubernetes.client.V1TokenReviewSpec(token=token, audiences=[audience]))
    return kubernetes.client.AuthenticationV1Api(api).create_token_review(body).status


def test_node_is_registered_ready_with_a_bound_placeholder_pod(admin_api, node_identity_factory):
    node_identity = node_identity_factory(labels={"pool": "blue"})
    core = kubernetes.client.CoreV1Api(admin_api)

    node = core.read_node(node_identity.node)
    pod = core.read_namespaced_pod(node_identity.pod_name, identity.PULLER_NAMESPACE)

    assert node.metadata.labels["pool"] == "blue"
    assert [(c.type, c.status) for c in node.status.conditions] == [("Ready", "True")]
    assert pod.spec.node_name == node_identity.node
    assert pod.spec.service_account_name == identity.PULLER_SERVICE_ACCOUNT


def test_pod_bound_token_names_its_node_for_its_audience_only(admin_api, node_identity_factory, puller_service_account):
    node_identity = node_identity_factory()
    credentials_token = node_identity.token(CREDENTIALS_AUDIENCE)

    accepted = review(admin_api, credentials_token, CREDENTIALS_AUDIENCE)
    assert accepted.authenticated is True
    assert accepted.audiences == [CREDENTIALS_AUDIENCE]
    assert accepted.user.username == puller_service_account
    assert accepted.user.extra[NODE_NAME_EXTRA] == [node_identity.node]
    assert accepted.user.extra[POD_NAME_EXTRA] == [node_identity.pod_name]

    assert not review(admin_api, credentials_token, INVENTORY_AUDIENCE).authenticated

    inventory_token = node_identity.token(INVENTORY_AUDIENCE)
    assert review(admin_api, inventory_token, INVENTORY_AUDIENCE).user.extra[NODE_NAME_EXTRA] == [node_identity.node]
    assert not review(admin_api, inventory_token, CREDENTIALS_AUDIENCE).authenticated


def test_each_node_token_carries_its_own_node(admin_api, node_identity_factory):
    first, second = node_identity_factory(), node_identity_factory()

    named = {
        each.node: review(admin_api, each.token(CREDENTIALS_AUDIENCE), CREDENTIALS_AUDIENCE).user.extra[NODE_NAME_EXTRA]
        for each in (first, second)
    }

    assert named == {first.node: [first.node], second.node: [second.node]}


def test_token_files_are_private_and_where_the_puller_looks(control_plane, node_identity_factory):
    node_identity = node_identity_factory()

    for audience in (CREDENTIALS_AUDIENCE, INVENTORY_AUDIENCE):
        path = control_plane.state_dir / "nodes" / node_identity.node / "tokens" / audience.replace("/", "_") / "token"
        assert node_identity.token_file(audience) == path
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text().count(".") == 2  # a compact JWS


def test_token_file_is_refreshed_before_expiry_and_stays_valid(admin_api, node_identity_factory):
    # The apiserver's minimum lifetime is 600 s; refreshing at 0.5% of it means every 3 s.
    node_identity = node_identity_factory(expiration_seconds=600, refresh_fraction=0.005)
    path = node_identity.token_file(CREDENTIALS_AUDIENCE)
    first_token, first_mtime = path.read_text(), path.stat().st_mtime_ns

    wait_until(lambda: path.read_text() != first_token, timeout=60, what="the token file to be rewritten")

    assert path.stat().st_mtime_ns > first_mtime
    assert node_identity.refreshes >= 2
    refreshed = review(admin_api, path.read_text(), CREDENTIALS_AUDIENCE)
    assert refreshed.authenticated is True
    assert refreshed.user.extra[NODE_NAME_EXTRA] == [node_identity.node]


def test_refresher_keeps_going_across_an_apiserver_restart(control_plane, admin_api, node_identity_factory):
    node_identity = node_identity_factory(expiration_seconds=600, refresh_fraction=0.005)
    path = node_identity.token_file(CREDENTIALS_AUDIENCE)

    control_plane.restart_apiserver()
    after_restart = path.read_text()
    wait_until(lambda: path.read_text() != after_restart, timeout=60, what="a refresh after the restart")

    assert review(admin_api, path.read_text(), CREDENTIALS_AUDIENCE).user.extra[NODE_NAME_EXTRA] == [node_identity.node]


def test_token_stops_authenticating_once_its_pod_is_gone(admin_api, node_identity_factory):
    node_identity = node_identity_factory()
    node_identity.stop()  # otherwise the refresher would recreate the Pod
    token = node_identity.token(CREDENTIALS_AUDIENCE)
    assert review(admin_api, token, CREDENTIALS_AUDIENCE).authenticated is True

    kubernetes.client.CoreV1Api(admin_api).delete_namespaced_pod(
        node_identity.pod_name, identity.PULLER_NAMESPACE, grace_period_seconds=0
    )

    wait_until(
        lambda: not review(admin_api, token, CREDENTIALS_AUDIENCE).authenticated,
        timeout=60,
        interval=0.5,
        what="TokenReview to reject a token whose Pod was deleted",
    )
