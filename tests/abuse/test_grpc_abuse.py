"""Every gRPC method of the running services, fed empty, malformed and oversized messages and bad tokens.

Each call goes through a raw channel (bytes in, bytes out), so the test can send what no generated stub would.
The expected status is asserted per case, then the service must still be alive, ready and SERVING on gRPC health.
Authentication refusals of the Credentials and NodeInventory rules themselves are in tests/integration; here the
point is that every method refuses the same abuse the same way and nothing falls over.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import kubernetes.client
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from localcluster import identity, pki
from localcluster.cluster import LocalCluster
from localcluster.system import PrepullSystem, ServiceProcess
from tests.support.system_helpers import assert_all_services_healthy

pytestmark = pytest.mark.integration

OVERSIZED_BYTES = 4 * 1024 * 1024 + 1024  # the servers' receive limit is 4 MiB
CALL_TIMEOUT = 15.0
CALLER_NAMESPACE = "default"
CALLER_ACCOUNT = "abuse-caller"


@dataclass(frozen=True)
class Method:
    """One gRPC method: which service process serves it, its path, whether it streams, its token audience."""

    service: str
    path: str
    streaming: bool
    audience: str
    node_bound: bool = False

    @property
    def id(self) -> str:
        return self.path.rsplit("/", 1)[-1]


METHODS = [
    Method("nodeimage_sync", "/prepull.v1.NodeInventory/ListNodes", False, identity.INVENTORY_AUDIENCE),
    Method("nodeimage_sync", "/prepull.v1.NodeInventory/WatchNodes", True, identity.INVENTORY_AUDIENCE),
    Method("nodeimage_sync", "/prepull.v1.NodeInventory/ReportImages", False, identity.INVENTORY_AUDIENCE, True),
    Method("nodeimage_sync", "/prepull.v1.NodeInventory/WhichNodes", False, identity.INVENTORY_AUDIENCE),
    Method("scheduler", "/prepull.v1.Credentials/GetPullCredentials", False, identity.CREDENTIALS_AUDIENCE, True),
    Method("scheduler", "/prepull.v1.Jobs/CreateJob", False, "prepull.io/jobs"),
    Method("scheduler", "/prepull.v1.Jobs/GetJob", False, "prepull.io/jobs"),
    Method("scheduler", "/prepull.v1.Jobs/ListJobs", False, "prepull.io/jobs"),
    Method("scheduler", "/prepull.v1.Jobs/WatchJob", True, "prepull.io/jobs"),
    Method("scheduler", "/prepull.v1.Jobs/DeleteJob", False, "prepull.io/jobs"),
    Method("puller-node-1", "/prepull.v1.Puller/PullImage", True, "prepull.io/puller"),
    Method("puller-node-1", "/prepull.v1.Puller/ImageStatus", False, "prepull.io/puller"),
    Method("puller-node-1", "/prepull.v1.Puller/ListImages", False, "prepull.io/puller"),
]
METHOD_PARAMS = [pytest.param(method, id=method.id) for method in METHODS]


class Tokens:
    """Real and crafted bearer tokens for the abuse calls, made once per module."""

    def __init__(self, local: LocalCluster) -> None:
        self._local = local
        self.api = local.api_client()
        self._valid: dict[tuple[str, bool], str] = {}
        self._grant_caller()

    def _grant_caller(self) -> None:
        """A ServiceAccount allowed everything, so RBAC never hides what the method does with the message."""
        core = kubernetes.client.CoreV1Api(self.api)
        core.create_namespaced_service_account(CALLER_NAMESPACE, {"metadata": {"name": CALLER_ACCOUNT}})
        binding = {
            "metadata": {"name": CALLER_ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": CALLER_ACCOUNT, "namespace": CALLER_NAMESPACE}],
        }
        kubernetes.client.RbacAuthorizationV1Api(self.api).create_cluster_role_binding(binding)

    def valid(self, method: Method) -> str:
        """A token the method accepts: the node-1 puller's for node-bound methods, the admin caller's otherwise."""
        key = (method.audience, method.node_bound)
        if key not in self._valid:
            self._valid[key] = self._issue(method.audience, node_bound=method.node_bound)
        return self._valid[key]

    def _issue(self, audience: str, *, node_bound: bool) -> str:
        if node_bound:
            pod = identity.ensure_placeholder_pod(self.api, "node-1")
            return identity.request_pod_token(self.api, pod=pod, audience=audience, expiration_seconds=3600).token
        request = {"spec": {"audiences": [audience], "expirationSeconds": 3600}}
        response = kubernetes.client.CoreV1Api(self.api).create_namespaced_service_account_token(
            CALLER_ACCOUNT, CALLER_NAMESPACE, request
        )
        token: str = response.status.token
        return token

    def wrong_audience(self, method: Method) -> str:
        return self._issue("prepull.io/somebody-else", node_bound=method.node_bound)

    def expired(self, method: Method) -> str:
        """The valid token's claims, re-signed with the cluster's real ServiceAccount key, expired an hour ago."""
        key = pki.load_signing_key(self._local.control_plane.service_account_key)
        now = int(time.time())
        claims = _claims(self.valid(method)) | {"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}
        return pki.sign_jwt(key, claims, kid=pki.key_id(key))

    def forged(self, method: Method) -> str:
        """The valid token's claims signed by a key the cluster never saw, claiming the real key's id."""
        real = pki.load_signing_key(self._local.control_plane.service_account_key)
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return pki.sign_jwt(other, _claims(self.valid(method)), kid=pki.key_id(real))


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


@pytest.fixture(scope="module")
def tokens(abuse_system: tuple[LocalCluster, PrepullSystem]) -> Tokens:
    return Tokens(abuse_system[0])


@pytest.fixture
def services(abuse_system: tuple[LocalCluster, PrepullSystem]) -> Iterator[PrepullSystem]:
    """The running services; after the test every one must still be alive, ready and SERVING."""
    _, system = abuse_system
    yield system
    assert_all_services_healthy(system)
    for service in system.services.values():
        assert grpc_health(service) == health_pb2.HealthCheckResponse.SERVING, service.name


def grpc_health(service: ServiceProcess) -> int:
    with grpc.insecure_channel(service.grpc_address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)
    status: int = answer.status
    return status


def call_raw(service: ServiceProcess, method: Method, body: bytes, token: str | None) -> grpc.StatusCode:
    """Send `body` as the request bytes, unchanged; return the call's status code (OK when it succeeded)."""
    metadata = [("authorization", f"Bearer {token}")] if token is not None else []
    options = [("grpc.max_send_message_length", 2 * OVERSIZED_BYTES)]
    with grpc.insecure_channel(service.grpc_address, options=options) as channel:
        try:
            if method.streaming:
                stream = channel.unary_stream(method.path)(body, metadata=metadata, timeout=CALL_TIMEOUT)
                for _ in stream:
                    break
                stream.cancel()
            else:
                channel.unary_unary(method.path)(body, metadata=metadata, timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            return code
    return grpc.StatusCode.OK


def service_of(services: PrepullSystem, method: Method) -> ServiceProcess:
    return services.services[method.service]


# Deliberately broken protobuf encodings: a length-delimited field claiming more bytes than follow, a field
# number 0, a truncated varint, and a wire type (7) that does not exist.
MALFORMED_BODIES = {
    "overlong-length": b"\x0a\xff\xff\xff\x0f" + b"x" * 8,
    "field-zero": b"\x00\x01",
    "truncated-varint": b"\x08\xff\xff\xff",
    "bad-wire-type": b"\x0f\x01\x02",
}


class LogWatch:
    """What a service wrote to its log since the watch began (the services log to a file, one JSON line each)."""

    def __init__(self, service: ServiceProcess) -> None:
        self._path = service.process.log_path
        self._start = self._path.stat().st_size

    def new_text(self) -> str:
        with self._path.open("rb") as log:
            log.seek(self._start)
            return log.read().decode(errors="replace")


def assert_no_traceback(watch: LogWatch) -> None:
    """grpc's own INTERNAL path logs "Exception deserializing request!" with a traceback per call; ours must not."""
    text = watch.new_text()
    assert "Traceback" not in text and "Exception deserializing" not in text, text[-2000:]


@pytest.mark.parametrize("method", METHOD_PARAMS)
@pytest.mark.parametrize("body", list(MALFORMED_BODIES.values()), ids=list(MALFORMED_BODIES))
def test_malformed_bytes_from_an_admitted_caller_are_invalid_argument_without_a_traceback(
    services: PrepullSystem, tokens: Tokens, method: Method, body: bytes
) -> None:
    service = service_of(services, method)
    watch = LogWatch(service)

    assert call_raw(service, method, body, tokens.valid(method)) == grpc.StatusCode.INVALID_ARGUMENT
    assert_no_traceback(watch)


@pytest.mark.parametrize("method", METHOD_PARAMS)
@pytest.mark.parametrize("kind", ["missing", "forged"])
def test_malformed_bytes_without_a_valid_token_are_unauthenticated_without_a_traceback(
    services: PrepullSystem, tokens: Tokens, method: Method, kind: str
) -> None:
    """Authentication runs before the malformed message is refused: no token, no word about the message."""
    service = service_of(services, method)
    token = bad_token(tokens, method, kind)
    watch = LogWatch(service)

    for body in MALFORMED_BODIES.values():
        assert call_raw(service, method, body, token) == grpc.StatusCode.UNAUTHENTICATED
    assert_no_traceback(watch)


@pytest.mark.parametrize("method", METHOD_PARAMS)
def test_oversized_message_is_refused_with_resource_exhausted(
    services: PrepullSystem, tokens: Tokens, method: Method
) -> None:
    body = b"\x0a" + _varint(OVERSIZED_BYTES) + b"a" * OVERSIZED_BYTES
    code = call_raw(service_of(services, method), method, body, tokens.valid(method))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


# What each method answers to an empty (all-defaults) request from an authorized caller: a validation error
# for methods that need a name, an answer for methods whose empty request means "all" or "none", and a refusal
# for ReportImages, whose empty node name is not the caller's node. Jobs.DeleteJob must refuse an empty name
# itself: passed on, it would turn the DELETE into a delete-collection of the namespace's jobs.
EMPTY_MESSAGE_CODES = {
    "ListNodes": grpc.StatusCode.OK,
    "WatchNodes": grpc.StatusCode.OK,
    "ReportImages": grpc.StatusCode.PERMISSION_DENIED,
    "WhichNodes": grpc.StatusCode.INVALID_ARGUMENT,
    "GetPullCredentials": grpc.StatusCode.INVALID_ARGUMENT,
    "GetJob": grpc.StatusCode.INVALID_ARGUMENT,
    "CreateJob": grpc.StatusCode.INVALID_ARGUMENT,
    "DeleteJob": grpc.StatusCode.INVALID_ARGUMENT,
    "ListJobs": grpc.StatusCode.OK,
    "WatchJob": grpc.StatusCode.INVALID_ARGUMENT,
    "PullImage": grpc.StatusCode.INVALID_ARGUMENT,
    "ImageStatus": grpc.StatusCode.INVALID_ARGUMENT,
    "ListImages": grpc.StatusCode.OK,
}


@pytest.mark.parametrize("method", [pytest.param(m, id=m.id) for m in METHODS if m.id in EMPTY_MESSAGE_CODES])
def test_empty_message_gets_a_deliberate_answer(services: PrepullSystem, tokens: Tokens, method: Method) -> None:
    code = call_raw(service_of(services, method), method, b"", tokens.valid(method))
    assert code == EMPTY_MESSAGE_CODES[method.id]


BAD_TOKENS = ["missing", "garbage", "wrong-audience", "expired", "forged"]


def bad_token(tokens: Tokens, method: Method, kind: str) -> str | None:
    match kind:
        case "missing":
            return None
        case "garbage":
            return "not.a-jwt.at-all"
        case "wrong-audience":
            return tokens.wrong_audience(method)
        case "expired":
            return tokens.expired(method)
        case _:
            return tokens.forged(method)


@pytest.mark.parametrize("method", METHOD_PARAMS)
@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_bad_tokens_are_unauthenticated_on_every_method(
    services: PrepullSystem, tokens: Tokens, method: Method, kind: str
) -> None:
    code = call_raw(service_of(services, method), method, b"", bad_token(tokens, method, kind))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_puller_refuses_a_caller_bound_to_another_node(services: PrepullSystem, tokens: Tokens) -> None:
    """node-1's puller pulls for node-1's NodeImage (`update` on it); another node's puller identity may not."""
    method = next(m for m in METHODS if m.id == "PullImage")
    api = tokens.api
    kubernetes.client.CoreV1Api(api).create_node({"metadata": {"name": "elsewhere"}})
    pod = identity.ensure_placeholder_pod(api, "elsewhere")
    token = identity.request_pod_token(api, pod=pod, audience=method.audience, expiration_seconds=600).token
    assert call_raw(service_of(services, method), method, b"", token) == grpc.StatusCode.PERMISSION_DENIED


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
