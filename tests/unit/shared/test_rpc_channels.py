"""Client channels retry UNAVAILABLE by themselves (service config), and nothing else."""

from __future__ import annotations

import json
import threading

import grpc
import pytest

from services.shared.gen.prepull.v1 import puller_pb2, puller_pb2_grpc
from services.shared.rpc import channels
from services.shared.rpc import server as rpc_server

FAST = channels.RetryPolicy(initial_backoff_seconds=0.01, max_backoff_seconds=0.05)


class FlakyPuller(puller_pb2_grpc.PullerServicer):
    """Fails ListImages with `code` for the first `failures` attempts, then answers; counts attempts."""

    def __init__(self, failures: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.failures, self.code = failures, code
        self.attempts = 0
        self._lock = threading.Lock()

    def ListImages(self, request, context):
        with self._lock:
            self.attempts += 1
            attempt = self.attempts
        if attempt <= self.failures:
            context.abort(self.code, f"attempt {attempt} fails")
        return puller_pb2.ListImagesResponse()

    def PullImage(self, request, context):
        raise NotImplementedError

    def ImageStatus(self, request, context):
        raise NotImplementedError


@pytest.fixture
def serve():
    servers = []

    def start(servicer: FlakyPuller) -> int:
        server, port = rpc_server.create_server(
            "127.0.0.1:0", [(puller_pb2_grpc.add_PullerServicer_to_server, servicer)]
        )
        server.start()
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop(0).wait()


def list_images(port: int, retry: channels.RetryPolicy = FAST) -> None:
    with channels.create_channel(f"127.0.0.1:{port}", config=channels.service_config(retry)) as channel:
        puller_pb2_grpc.PullerStub(channel).ListImages(puller_pb2.ListImagesRequest(), timeout=30)


def test_unavailable_is_retried_until_it_succeeds(serve):
    servicer = FlakyPuller(failures=2)

    list_images(serve(servicer))

    assert servicer.attempts == 3


def test_retries_stop_at_max_attempts(serve):
    servicer = FlakyPuller(failures=10)

    with pytest.raises(grpc.RpcError) as failed:
        list_images(serve(servicer), channels.RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01))

    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.attempts == 3


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL])
def test_other_codes_are_not_retried(serve, code):
    servicer = FlakyPuller(failures=1, code=code)

    with pytest.raises(grpc.RpcError) as failed:
        list_images(serve(servicer))

    assert failed.value.code() == code
    assert servicer.attempts == 1


def test_default_channel_retries_too(serve):
    servicer = FlakyPuller(failures=1)

    with channels.create_channel(f"127.0.0.1:{serve(servicer)}") as channel:
        puller_pb2_grpc.PullerStub(channel).ListImages(puller_pb2.ListImagesRequest(), timeout=30)

    assert servicer.attempts == 2


def test_service_config_shape():
    config = json.loads(
        channels.service_config(services=["prepull.v1.Credentials"], timeout_seconds=5, load_balancing="round_robin")
    )

    assert config == {
        "methodConfig": [
            {
                "name": [{"service": "prepull.v1.Credentials"}],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "5.0s",
                    "backoffMultiplier": 2.0,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
                "timeout": "5s",
            }
        ],
        "loadBalancingConfig": [{"round_robin": {}}],
    }
    assert json.loads(channels.service_config())["methodConfig"][0]["name"] == [{}]
