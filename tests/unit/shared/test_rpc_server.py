"""A server from `create_server`: health, reflection, limits, binding, and graceful stop on SIGTERM."""

from __future__ import annotations

import signal
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from localcluster.process import wait_until
from services.shared.gen.prepull.v1 import puller_pb2, puller_pb2_grpc, types_pb2
from services.shared.rpc import server as rpc_server
from services.shared.rpc.health import Health

PULLER = "prepull.v1.Puller"


class ToyPuller(puller_pb2_grpc.PullerServicer):
    """ListImages optionally blocks until released, so a call can be in flight when the server stops."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def ListImages(self, request, context):
        self.entered.set()
        assert self.release.wait(timeout=30)
        return puller_pb2.ListImagesResponse(images=[types_pb2.Image(digest="sha256:" + "a" * 64)])

    def PullImage(self, request, context):
        yield puller_pb2.PullProgress(phase=puller_pb2.PullProgress.SUCCEEDED)

    def ImageStatus(self, request, context):
        raise NotImplementedError


@pytest.fixture
def served():
    """Start a server with ToyPuller on a free port; yield (servicer, health, channel, server); stop it."""
    servicer, health = ToyPuller(), Health()
    server, port = rpc_server.create_server(
        "127.0.0.1:0", [(puller_pb2_grpc.add_PullerServicer_to_server, servicer)], health=health, serving=False
    )
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield servicer, health, channel, server
    server.stop(0).wait()


def check(channel: grpc.Channel, service: str = "") -> int:
    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    return int(answer.status)


def test_health_reports_overall_and_per_service_status(served):
    _, health, channel, _ = served
    assert health.services == ("", PULLER)
    assert check(channel) == check(channel, PULLER) == health_pb2.HealthCheckResponse.NOT_SERVING

    health.set_serving(True)
    assert check(channel) == check(channel, PULLER) == health_pb2.HealthCheckResponse.SERVING

    health.set_serving(False, PULLER)
    assert check(channel) == health_pb2.HealthCheckResponse.SERVING
    assert check(channel, PULLER) == health_pb2.HealthCheckResponse.NOT_SERVING

    with pytest.raises(grpc.RpcError) as unknown:
        check(channel, "prepull.v1.Nope")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_watch_sees_readiness_change(served):
    _, health, channel, _ = served
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=PULLER), timeout=30)

    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    health.set_serving(True)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()


def test_reflection_lists_every_service_and_describes_ours(served):
    _, _, channel, _ = served
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=PULLER),
    ]

    listed, described = list(stub.ServerReflectionInfo(iter(requests), timeout=10))

    names = {service.name for service in listed.list_services_response.service}
    assert names == {PULLER, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    assert described.file_descriptor_response.file_descriptor_proto


def test_servicers_answer(served):
    _, _, channel, _ = served
    stub = puller_pb2_grpc.PullerStub(channel)

    assert len(stub.ListImages(puller_pb2.ListImagesRequest(), timeout=10).images) == 1
    assert [p.phase for p in stub.PullImage(puller_pb2.PullImageRequest(image="x"), timeout=10)] == [
        puller_pb2.PullProgress.SUCCEEDED
    ]


def test_messages_over_the_limit_are_refused():
    server, port = rpc_server.create_server(
        "127.0.0.1:0", [(puller_pb2_grpc.add_PullerServicer_to_server, ToyPuller())], max_message_bytes=1024
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as refused:
            puller_pb2_grpc.PullerStub(channel).ListImages(puller_pb2.ListImagesRequest(image="x" * 2048), timeout=10)
    finally:
        server.stop(0).wait()
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_taken_port_is_an_os_error():
    first, port = rpc_server.create_server("127.0.0.1:0", [])
    try:
        with pytest.raises(OSError, match=f"cannot listen for gRPC on '127.0.0.1:{port}'"):
            rpc_server.create_server(f"127.0.0.1:{port}", [])
    finally:
        first.stop(0).wait()


def test_sigterm_drains_calls_in_flight_and_refuses_new_ones(served):
    servicer, health, channel, server = served
    health.set_serving(True)
    stub = puller_pb2_grpc.PullerStub(channel)
    previous_handler = signal.getsignal(signal.SIGTERM)
    servicer.release.clear()
    in_flight = stub.ListImages.future(puller_pb2.ListImagesRequest(), timeout=60)
    assert servicer.entered.wait(timeout=30)
    observed: dict[str, object] = {}

    def terminate_then_release() -> None:
        # Signal only once serve_until_signal has its handler in place; the default action would end pytest.
        wait_until(lambda: signal.getsignal(signal.SIGTERM) is not previous_handler, timeout=30, what="handler")
        main = threading.main_thread().ident
        assert main is not None
        signal.pthread_kill(main, signal.SIGTERM)
        wait_until(lambda: _status(health) == health_pb2.HealthCheckResponse.NOT_SERVING, timeout=30, what="drain")
        try:
            stub.ListImages(puller_pb2.ListImagesRequest(), timeout=10)
        except grpc.RpcError as error:
            observed["new call"] = error.code()
        servicer.release.set()

    helper = threading.Thread(target=terminate_then_release)
    helper.start()
    received = rpc_server.serve_until_signal(server, grace=30, health=health)
    helper.join(timeout=30)

    assert received == signal.SIGTERM
    assert len(in_flight.result(timeout=10).images) == 1
    assert observed["new call"] == grpc.StatusCode.UNAVAILABLE
    assert signal.getsignal(signal.SIGTERM) is previous_handler


def _status(health: Health) -> int:
    """Ask the health servicer directly (the server may already refuse calls)."""
    return int(health.servicer.Check(health_pb2.HealthCheckRequest(service=""), None).status)
