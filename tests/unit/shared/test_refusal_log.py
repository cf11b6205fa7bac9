"""Refused gRPC calls are logged at most once per kind and interval, with the count of those left out."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from services.shared.auth import policy, refusal_log
from services.shared.auth.caller import Caller
from services.shared.auth.errors import PermissionDenied, Unauthenticated
from services.shared.auth.interceptor import AuthInterceptor
from services.shared.clock import ManualClock
from services.shared.gen.prepull.v1 import puller_pb2, puller_pb2_grpc
from services.shared.rpc import server as rpc_server
from services.shared.rpc import status

LOGGER = "test.refusals"
INTERVAL = 30.0
BAD_TOKEN = Unauthenticated("token is invalid", detail="signature")
NOT_YOU = PermissionDenied("alice may not call this method")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def refusals(clock: ManualClock) -> refusal_log.RefusalLog:
    return refusal_log.RefusalLog(logging.getLogger(LOGGER), interval_seconds=INTERVAL, clock=clock)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith(LOGGER)]


def test_a_burst_of_one_kind_is_one_line_and_the_next_line_counts_the_rest(
    refusals: refusal_log.RefusalLog, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _ in range(100):
        refusals.refused("/prepull.v1.Puller/ListImages", "ipv4:10.0.0.9:5000", BAD_TOKEN)
    assert lines(caplog) == [
        "refused /prepull.v1.Puller/ListImages from ipv4:10.0.0.9:5000: token is invalid (signature)"
    ]

    clock.advance(INTERVAL - 0.1)
    refusals.refused("/prepull.v1.Puller/ListImages", "ipv4:10.0.0.9:5000", BAD_TOKEN)
    assert len(lines(caplog)) == 1
    clock.advance(0.1)
    refusals.refused("/prepull.v1.Puller/ListImages", "ipv4:10.0.0.9:5001", BAD_TOKEN)
    assert lines(caplog)[1] == (
        "refused /prepull.v1.Puller/ListImages from ipv4:10.0.0.9:5001: token is invalid (signature);"
        " 100 similar refusals not logged since the last line"
    )
    assert refusals.refusals == 102


def test_kinds_are_limited_apart(
    refusals: refusal_log.RefusalLog, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _ in range(3):
        refusals.refused("/m", "peer", BAD_TOKEN)
        refusals.refused("/m", "peer", NOT_YOU)
        refusals.refused("/m", "peer", Unauthenticated("missing credentials"))
    assert lines(caplog) == [
        "refused /m from peer: token is invalid (signature)",
        "refused /m from peer: alice may not call this method (-)",
        "refused /m from peer: missing credentials (-)",
    ]


def test_a_quiet_kind_starts_afresh_without_a_count(
    refusals: refusal_log.RefusalLog, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    refusals.refused("/m", "peer", NOT_YOU)
    clock.advance(INTERVAL * 5)
    refusals.refused("/m", "peer", NOT_YOU)
    assert lines(caplog) == ["refused /m from peer: alice may not call this method (-)"] * 2


def test_interval_zero_logs_every_refusal(clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    every = refusal_log.RefusalLog(logging.getLogger(LOGGER), interval_seconds=0, clock=clock)
    for _ in range(3):
        every.refused("/m", "peer", BAD_TOKEN)
    assert len(lines(caplog)) == 3


def test_many_kinds_cannot_grow_the_table_beyond_its_bound(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    bounded = refusal_log.RefusalLog(logging.getLogger(LOGGER), interval_seconds=INTERVAL, max_kinds=2, clock=clock)
    for user in range(50):
        bounded.refused("/m", "peer", PermissionDenied(f"user{user} may not call this method"))
    # Two kinds told apart, then everything else of the class shares one line per interval.
    assert len(lines(caplog)) == 3
    assert bounded.refusals == 50

    clock.advance(INTERVAL)
    bounded.refused("/m", "peer", PermissionDenied("user99 may not call this method"))
    assert lines(caplog)[-1] == "refused /m from peer: user99 may not call this method (-)"


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        refusal_log.RefusalLog(logging.getLogger(LOGGER), interval_seconds=-1)


class NoTokenIsValid:
    def authenticate(self, token: str, audience: str) -> Caller:
        raise Unauthenticated("token is invalid, expired, or not issued for this audience")


class Unreachable(puller_pb2_grpc.PullerServicer):
    """Fails any call that gets past the interceptor."""

    def ListImages(
        self, request: puller_pb2.ListImagesRequest, context: grpc.ServicerContext
    ) -> puller_pb2.ListImagesResponse:
        raise AssertionError("an unauthenticated call reached the servicer")

    def PullImage(self, request: puller_pb2.PullImageRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        raise AssertionError("an unauthenticated call reached the servicer")

    def ImageStatus(self, request: puller_pb2.ImageStatusRequest, context: grpc.ServicerContext) -> Any:
        raise AssertionError("an unauthenticated call reached the servicer")


def test_the_interceptor_refuses_every_call_but_logs_a_flood_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="services.shared.auth.interceptor")
    interceptor = AuthInterceptor(
        policy.PolicyTable({"prepull.v1.Puller": policy.MethodPolicy(audience="prepull.io/inventory")}),
        authenticator=NoTokenIsValid(),
        refusal_log_interval_seconds=3600,
    )
    server, port = rpc_server.create_server(
        "127.0.0.1:0",
        [(puller_pb2_grpc.add_PullerServicer_to_server, Unreachable())],
        interceptors=[interceptor, status.StatusInterceptor()],
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = puller_pb2_grpc.PullerStub(channel)
            codes = []
            for _ in range(20):
                with pytest.raises(grpc.RpcError) as raised:
                    stub.ListImages(
                        puller_pb2.ListImagesRequest(), metadata=[("authorization", "Bearer x")], timeout=10
                    )
                codes.append(raised.value.code())
    finally:
        server.stop(0).wait()
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 20
    refused_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused ")]
    assert len(refused_lines) == 1
    assert "Bearer" not in refused_lines[0] and " x " not in refused_lines[0]
    assert interceptor.refusals.refusals == 20
