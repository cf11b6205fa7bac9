"""The client side of authentication: a rotated token file is re-read and sent with every call."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import grpc
import pytest

from localcluster.identity import write_token_file
from services.shared.auth import token_source
from services.shared.auth.token_source import BearerTokenInterceptor, FileTokenSource, TokenUnavailable
from services.shared.gen.prepull.v1 import puller_pb2, puller_pb2_grpc
from services.shared.rpc import channels
from services.shared.rpc import server as rpc_server


def test_reads_and_strips_the_token(tmp_path):
    path = tmp_path / "token"
    path.write_text("first-token\n")

    assert FileTokenSource(path).token() == "first-token"


def test_a_rotated_file_is_re_read(tmp_path):
    path = tmp_path / "token"
    write_token_file(path, "first-token")
    source = FileTokenSource(path)
    assert source.token() == "first-token"

    write_token_file(path, "second-token")  # atomic replace, as the kubelet does: a new inode

    assert source.token() == "second-token"


def test_a_rewrite_in_place_is_noticed_by_its_mtime(tmp_path):
    path = tmp_path / "token"
    path.write_text("aaaa-token")
    source = FileTokenSource(path)
    assert source.token() == "aaaa-token"
    stat = path.stat()

    path.write_text("bbbb-token")  # same size, same inode
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))

    assert source.token() == "bbbb-token"


def test_unchanged_file_is_not_read_again(tmp_path):
    path = tmp_path / "token"
    path.write_text("aaaa-token")
    source = FileTokenSource(path)
    assert source.token() == "aaaa-token"
    stat = path.stat()

    path.write_text("bbbb-token")  # same size and inode; then put the old mtime back
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    assert source.token() == "aaaa-token", "one stat per call; the file is read only when it changed"


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_missing_or_empty_file_names_the_path_not_the_content(tmp_path, content):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)

    with pytest.raises(TokenUnavailable, match=str(path)):
        FileTokenSource(path).token()


class MetadataEcho(puller_pb2_grpc.PullerServicer):
    """Records the `authorization` values each call carried."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []
        self._lock = threading.Lock()

    def _record(self, context) -> None:
        with self._lock:
            self.seen.append([v for k, v in context.invocation_metadata() if k == "authorization"])

    def ListImages(self, request, context):
        self._record(context)
        return puller_pb2.ListImagesResponse()

    def PullImage(self, request, context):
        self._record(context)
        yield puller_pb2.PullProgress(phase=puller_pb2.PullProgress.SUCCEEDED)

    def ImageStatus(self, request, context):
        raise NotImplementedError


@pytest.fixture
def echo_server():
    servers = []

    def start(credentials: grpc.ServerCredentials | None = None) -> tuple[MetadataEcho, int]:
        servicer = MetadataEcho()
        server, port = rpc_server.create_server(
            "127.0.0.1:0", [(puller_pb2_grpc.add_PullerServicer_to_server, servicer)], credentials=credentials
        )
        server.start()
        servers.append(server)
        return servicer, port

    yield start
    for server in servers:
        server.stop(0).wait()


def test_interceptor_sends_the_current_token_on_every_kind_of_call(tmp_path: Path, echo_server):
    servicer, port = echo_server()
    path = tmp_path / "token"
    write_token_file(path, "first-token")
    interceptor = BearerTokenInterceptor(FileTokenSource(path))

    with channels.create_channel(f"127.0.0.1:{port}", interceptors=[interceptor]) as channel:
        stub = puller_pb2_grpc.PullerStub(channel)
        stub.ListImages(puller_pb2.ListImagesRequest(), metadata=[("authorization", "Bearer stale")], timeout=10)
        write_token_file(path, "second-token")
        list(stub.PullImage(puller_pb2.PullImageRequest(image="x"), timeout=10))

    assert servicer.seen == [["Bearer first-token"], ["Bearer second-token"]]


def test_interceptor_fails_the_call_locally_without_a_token(tmp_path, echo_server):
    servicer, port = echo_server()
    interceptor = BearerTokenInterceptor(FileTokenSource(tmp_path / "absent"))

    with (
        channels.create_channel(f"127.0.0.1:{port}", interceptors=[interceptor]) as channel,
        pytest.raises(TokenUnavailable),
    ):
        puller_pb2_grpc.PullerStub(channel).ListImages(puller_pb2.ListImagesRequest(), timeout=10)

    assert servicer.seen == []


def test_call_credentials_on_a_local_channel(tmp_path, echo_server):
    servicer, port = echo_server(grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP))
    path = tmp_path / "token"
    write_token_file(path, "local-token")
    credentials = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
        token_source.call_credentials(FileTokenSource(path)),
    )

    fast_retries = channels.service_config(channels.RetryPolicy(initial_backoff_seconds=0.01, max_backoff_seconds=0.05))
    with channels.create_channel(f"localhost:{port}", credentials=credentials, config=fast_retries) as channel:
        stub = puller_pb2_grpc.PullerStub(channel)
        stub.ListImages(puller_pb2.ListImagesRequest(), timeout=10)
        path.unlink()
        with pytest.raises(grpc.RpcError) as failed:
            stub.ListImages(puller_pb2.ListImagesRequest(), timeout=10)

    assert servicer.seen == [["Bearer local-token"]]
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert str(path) in failed.value.details()
