"""gRPC calls admitted by the real API server: a toy Credentials and NodeInventory service behind
`AuthInterceptor`, called with the Pod-bound tokens a node's puller really has."""

from __future__ import annotations

import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from localcluster.identity import CREDENTIALS_AUDIENCE, INVENTORY_AUDIENCE
from localcluster.process import wait_until
from services.shared.auth import caller as caller_module
from services.shared.auth import metadata as auth_metadata
from services.shared.auth.interceptor import AuthInterceptor
from services.shared.auth.policy import MethodPolicy, PolicyTable
from services.shared.auth.subjectaccess import ResourceAccess, SubjectAccessReviewer
from services.shared.auth.token_source import BearerTokenInterceptor, FileTokenSource
from services.shared.auth.tokenreview import TokenReviewAuthenticator
from services.shared.gen.prepull.v1 import (
    credentials_pb2,
    credentials_pb2_grpc,
    inventory_pb2,
    inventory_pb2_grpc,
)
from services.shared.rpc import channels, status
from services.shared.rpc import server as rpc_server

from .test_tokenreview import forged, grant_list_pods

pytestmark = pytest.mark.integration


class RecordingCredentials(credentials_pb2_grpc.CredentialsServicer):
    """Answers with no credentials and remembers who asked."""

    def __init__(self) -> None:
        self.callers: list[caller_module.Caller] = []
        self._lock = threading.Lock()

    def GetPullCredentials(self, request, context):
        with self._lock:
            self.callers.append(caller_module.current_caller())
        return credentials_pb2.GetPullCredentialsResponse()


class EmptyInventory(inventory_pb2_grpc.NodeInventoryServicer):
    def ListNodes(self, request, context):
        return inventory_pb2.ListNodesResponse()

    def WatchNodes(self, request, context):
        raise NotImplementedError

    def ReportImages(self, request, context):
        raise NotImplementedError

    def WhichNodes(self, request, context):
        raise NotImplementedError


@pytest.fixture
def toy_server(reviewer_api, puller_service_account, kube_namespace):
    """The toy services on a free port, admitting callers as design §2 says; yields (servicer, address)."""
    policies = PolicyTable(
        {
            "/prepull.v1.Credentials/GetPullCredentials": MethodPolicy(
                audience=CREDENTIALS_AUDIENCE, usernames=frozenset({puller_service_account}), require_node_binding=True
            ),
            "/prepull.v1.NodeInventory/ListNodes": MethodPolicy(
                audience=INVENTORY_AUDIENCE, access=ResourceAccess("list", "pods", namespace=kube_namespace)
            ),
        }
    )
    interceptor = AuthInterceptor(
        policies,
        authenticator=TokenReviewAuthenticator(reviewer_api),
        reviewer=SubjectAccessReviewer(reviewer_api, allowed_ttl_seconds=0, denied_ttl_seconds=0),
    )
    servicer = RecordingCredentials()
    server, port = rpc_server.create_server(
        "127.0.0.1:0",
        [
            (credentials_pb2_grpc.add_CredentialsServicer_to_server, servicer),
            (inventory_pb2_grpc.add_NodeInventoryServicer_to_server, EmptyInventory()),
        ],
        interceptors=[interceptor, status.StatusInterceptor()],
    )
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(0).wait()


def get_credentials(address: str, token: str | None) -> credentials_pb2.GetPullCredentialsResponse:
    with channels.create_channel(address) as channel:
        auth = [auth_metadata.authorization_entry(token)] if token is not None else []
        response: credentials_pb2.GetPullCredentialsResponse = credentials_pb2_grpc.CredentialsStub(
            channel
        ).GetPullCredentials(credentials_pb2.GetPullCredentialsRequest(image="nginx:1.25"), metadata=auth, timeout=60)
        return response


def list_nodes(address: str, token: str) -> inventory_pb2.ListNodesResponse:
    with channels.create_channel(address) as channel:
        response: inventory_pb2.ListNodesResponse = inventory_pb2_grpc.NodeInventoryStub(channel).ListNodes(
            inventory_pb2.ListNodesRequest(), metadata=[auth_metadata.authorization_entry(token)], timeout=60
        )
        return response


def code_of(call, *args) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call(*args)
    return raised.value.code()


def test_the_pullers_own_token_is_admitted_with_its_node(toy_server, node_identity_factory, puller_service_account):
    servicer, address = toy_server
    identity = node_identity_factory()
    source = FileTokenSource(identity.token_file(CREDENTIALS_AUDIENCE))

    with channels.create_channel(address, interceptors=[BearerTokenInterceptor(source)]) as channel:
        credentials_pb2_grpc.CredentialsStub(channel).GetPullCredentials(
            credentials_pb2.GetPullCredentialsRequest(image="nginx:1.25"), timeout=60
        )

    [caller] = servicer.callers
    assert caller.username == puller_service_account
    assert (caller.node_name, caller.pod_name) == (identity.node, identity.pod_name)


def test_missing_forged_and_wrong_audience_tokens_are_unauthenticated(toy_server, node_identity_factory):
    servicer, address = toy_server
    identity = node_identity_factory()

    assert code_of(get_credentials, address, None) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(get_credentials, address, forged(identity.token(CREDENTIALS_AUDIENCE))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert code_of(get_credentials, address, identity.token(INVENTORY_AUDIENCE)) == grpc.StatusCode.UNAUTHENTICATED
    assert servicer.callers == []


def test_another_service_account_is_denied_even_with_the_right_audience(toy_server, other_service_account_token):
    servicer, address = toy_server

    assert code_of(get_credentials, address, other_service_account_token(CREDENTIALS_AUDIENCE)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert servicer.callers == []


def test_rbac_decides_access_checked_methods(toy_server, admin_api, node_identity_factory, kube_namespace):
    _, address = toy_server
    identity = node_identity_factory()
    token = identity.token(INVENTORY_AUDIENCE)
    assert code_of(list_nodes, address, token) == grpc.StatusCode.PERMISSION_DENIED

    grant_list_pods(admin_api, kube_namespace, "system:serviceaccount:prepull-system:prepull-puller")

    wait_until(lambda: _admitted(address, token), timeout=60, interval=0.5, what="the RoleBinding to admit the call")


def test_health_needs_no_token(toy_server):
    _, address = toy_server
    with channels.create_channel(address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_a_server_that_cannot_review_answers_unavailable(unprivileged_api, node_identity_factory):
    policies = PolicyTable({"prepull.v1.Credentials": MethodPolicy(audience=CREDENTIALS_AUDIENCE)})
    interceptor = AuthInterceptor(policies, authenticator=TokenReviewAuthenticator(unprivileged_api))
    server, port = rpc_server.create_server(
        "127.0.0.1:0",
        [(credentials_pb2_grpc.add_CredentialsServicer_to_server, RecordingCredentials())],
        interceptors=[interceptor],
    )
    server.start()
    try:
        token = node_identity_factory().token(CREDENTIALS_AUDIENCE)
        assert code_of(get_credentials, f"127.0.0.1:{port}", token) == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0).wait()


def _admitted(address: str, token: str) -> bool:
    try:
        list_nodes(address, token)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.PERMISSION_DENIED:
            raise
        return False
    return True
