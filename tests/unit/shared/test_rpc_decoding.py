"""Request bytes that do not decode: INVALID_ARGUMENT after authentication, no traceback, servicer never called.

A real server from `create_server` on a free port, called through a raw channel (bytes in, bytes out) so the
test can send what no generated stub would. Token review answers come from a fixed table (the real TokenReview
path is covered in tests/integration/shared_auth and, for these messages, in tests/abuse/test_grpc_abuse.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from services.shared.auth import metadata, policy
from services.shared.auth.caller import Caller
from services.shared.auth.errors import Unauthenticated
from services.shared.auth.interceptor import AuthInterceptor
from services.shared.gen.prepull.v1 import puller_pb2, puller_pb2_grpc
from services.shared.rpc import server as rpc_server
from services.shared.rpc import status
from services.shared.rpc.health import Health

AUDIENCE = "prepull.io/puller"
TOKEN = "good-token"
LIST_IMAGES = "/prepull.v1.Puller/ListImages"
PULL_IMAGE = "/prepull.v1.Puller/PullImage"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
TRUNCATED_VARINT = b"\x08\xff\xff\xff"
MALFORMED = {
    "overlong-length": b"\x0a\xff\xff\xff\x0f" + b"x" * 8,
    "field-zero": b"\x00\x01",
    "truncated-varint": TRUNCATED_VARINT,
    "bad-wire-type": b"\x0f\x01\x02",
}


class OneToken:
    """TokenReview stand-in: `TOKEN` for `AUDIENCE` is alice, anything else is refused."""

    def authenticate(self, token: str, audience: str) -> Caller:
        if (token, audience) != (TOKEN, AUDIENCE):
            raise Unauthenticated("token is invalid")
        return Caller.from_user_info(username="alice")


class CountingPuller(puller_pb2_grpc.PullerServicer):
    """Counts the calls that reach it; a malformed request must never get this far."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def ListImages(self, request, context):
        self._count()
        return puller_pb2.ListImagesResponse()

    def PullImage(self, request, context):
        self._count()
        yield puller_pb2.PullProgress(phase=puller_pb2.PullProgress.SUCCEEDED)

    def ImageStatus(self, request, context):
        self._count()
        return puller_pb2.ImageStatusResponse()


@pytest.fixture
def served() -> Iterator[tuple[CountingPuller, Health, grpc.Channel]]:
    """The Puller service behind authentication and status mapping, as the services build it."""
    servicer, health = CountingPuller(), Health()
    interceptor = AuthInterceptor(
        policy.PolicyTable({"prepull.v1.Puller": policy.MethodPolicy(audience=AUDIENCE)}), authenticator=OneToken()
    )
    server, port = rpc_server.create_server(
        "127.0.0.1:0",
        [(puller_pb2_grpc.add_PullerServicer_to_server, servicer)],
        health=health,
        interceptors=[interceptor, status.StatusInterceptor()],
    )
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield servicer, health, channel
    server.stop(0).wait()


def call_raw(channel: grpc.Channel, method: str, body: bytes, token: str | None = TOKEN) -> grpc.RpcError:
    """Send `body` unchanged as the request of a unary or server-streaming method; return the call's error."""
    auth = [metadata.authorization_entry(token)] if token else []
    with pytest.raises(grpc.RpcError) as raised:
        if method == PULL_IMAGE:
            list(channel.unary_stream(method)(body, metadata=auth, timeout=10))
        else:
            channel.unary_unary(method)(body, metadata=auth, timeout=10)
    return raised.value


@pytest.fixture
def grpc_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record any logger emits during the test (grpc's and ours), from every thread."""
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_one_quiet_line_per_call(logs: pytest.LogCaptureFixture, calls: int) -> None:
    """No traceback, nothing above debug, and exactly one line per refused call."""
    assert not [r for r in logs.records if r.exc_info], "a traceback was logged"
    assert [r for r in logs.records if r.levelno > logging.DEBUG and r.name != "services.shared.auth.interceptor"] == []
    refusals = [r for r in logs.records if r.name == "services.shared.rpc.decoding"]
    assert len(refusals) == calls
    assert all("\n" not in r.getMessage() for r in refusals)


@pytest.mark.parametrize("method", [LIST_IMAGES, PULL_IMAGE])
@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_an_admitted_caller_sending_undecodable_bytes_gets_invalid_argument(served, grpc_logs, method, body):
    servicer, _, channel = served

    error = call_raw(channel, method, body)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request" in error.details() and "prepull.v1." in error.details()
    assert status.error_reason(error) == "MALFORMED_REQUEST"
    assert servicer.calls == 0
    assert_one_quiet_line_per_call(grpc_logs, calls=1)


@pytest.mark.parametrize("token", [None, "forged"], ids=["missing", "forged"])
def test_a_caller_without_a_valid_token_is_unauthenticated_whatever_the_bytes(served, grpc_logs, token):
    servicer, _, channel = served

    error = call_raw(channel, LIST_IMAGES, TRUNCATED_VARINT, token)

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert servicer.calls == 0
    assert_one_quiet_line_per_call(grpc_logs, calls=0)


def test_public_health_check_refuses_undecodable_bytes_and_still_answers(served, grpc_logs):
    _, _, channel = served

    error = call_raw(channel, HEALTH_CHECK, TRUNCATED_VARINT, token=None)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_one_quiet_line_per_call(grpc_logs, calls=1)
    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_health_watch_still_streams_status_changes(served):
    _, health, channel = served
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=30)

    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    health.set_serving(False)
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()


def test_a_request_stream_is_refused_at_its_first_undecodable_message(served, grpc_logs):
    _, _, channel = served
    good = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    reflect = channel.stream_stream(REFLECTION)

    answers = reflect(iter([good, TRUNCATED_VARINT, good]), timeout=10)

    assert next(answers)  # the first, valid message is answered
    with pytest.raises(grpc.RpcError) as raised:
        next(answers)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_one_quiet_line_per_call(grpc_logs, calls=1)


def test_well_formed_requests_still_reach_the_servicer(served):
    servicer, _, channel = served
    stub = puller_pb2_grpc.PullerStub(channel)

    stub.ListImages(puller_pb2.ListImagesRequest(), metadata=[metadata.authorization_entry(TOKEN)], timeout=10)
    progress = stub.PullImage(
        puller_pb2.PullImageRequest(image="x"), metadata=[metadata.authorization_entry(TOKEN)], timeout=10
    )

    assert [p.phase for p in progress] == [puller_pb2.PullProgress.SUCCEEDED]
    assert servicer.calls == 2
