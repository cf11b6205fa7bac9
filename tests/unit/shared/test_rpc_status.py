"""Exceptions leave a servicer as the status the one table gives them, with a stable reason and no leaks."""

from __future__ import annotations

import logging

import grpc
import pytest

from services.shared import credentials
from services.shared.api import imageref
from services.shared.auth import errors as auth_errors
from services.shared.gen.prepull.v1 import puller_pb2, puller_pb2_grpc
from services.shared.kube import errors as kube_errors
from services.shared.rpc import server as rpc_server
from services.shared.rpc import status


class ImageNotAssignedError(Exception):
    """A service's own domain error, added with `extended()`."""


class NarrowerNotFound(kube_errors.NotFound):
    """A subclass inherits its parent's code."""


@pytest.mark.parametrize(
    ("error", "code"),
    [
        pytest.param(imageref.InvalidImageReference("bad"), grpc.StatusCode.INVALID_ARGUMENT, id="image-ref"),
        pytest.param(
            credentials.InvalidPullSecret("ns/s", "no auths"), grpc.StatusCode.FAILED_PRECONDITION, id="secret"
        ),
        pytest.param(kube_errors.NotFound("gone"), grpc.StatusCode.NOT_FOUND, id="not-found"),
        pytest.param(NarrowerNotFound("gone"), grpc.StatusCode.NOT_FOUND, id="subclass"),
        pytest.param(kube_errors.Conflict("stale"), grpc.StatusCode.ABORTED, id="conflict"),
        pytest.param(kube_errors.AlreadyExists("taken"), grpc.StatusCode.ALREADY_EXISTS, id="exists"),
        pytest.param(kube_errors.Forbidden("policy"), grpc.StatusCode.PERMISSION_DENIED, id="forbidden"),
        pytest.param(kube_errors.TooManyRequests("slow down"), grpc.StatusCode.UNAVAILABLE, id="throttled"),
        pytest.param(kube_errors.KubeError("odd"), grpc.StatusCode.INTERNAL, id="kube-other"),
        pytest.param(auth_errors.Unauthenticated("who?"), grpc.StatusCode.UNAUTHENTICATED, id="unauthenticated"),
        pytest.param(auth_errors.ReviewUnavailable("later"), grpc.StatusCode.UNAVAILABLE, id="review-down"),
        pytest.param(ValueError("x"), None, id="unmapped"),
    ],
)
def test_default_table(error, code):
    assert status.DEFAULT_TABLE.code_for(error) == code


def test_extended_table_adds_and_overrides_without_changing_the_default():
    table = status.DEFAULT_TABLE.extended(
        {ImageNotAssignedError: grpc.StatusCode.PERMISSION_DENIED, kube_errors.Conflict: grpc.StatusCode.UNAVAILABLE}
    )

    assert table.code_for(ImageNotAssignedError()) == grpc.StatusCode.PERMISSION_DENIED
    assert table.code_for(kube_errors.Conflict("x")) == grpc.StatusCode.UNAVAILABLE
    assert status.DEFAULT_TABLE.code_for(ImageNotAssignedError()) is None
    assert status.DEFAULT_TABLE.code_for(kube_errors.Conflict("x")) == grpc.StatusCode.ABORTED


def test_reasons_are_the_class_names_in_upper_snake():
    assert status.reason_of(imageref.InvalidImageReference("x")) == "INVALID_IMAGE_REFERENCE"
    assert status.reason_of(ImageNotAssignedError()) == "IMAGE_NOT_ASSIGNED"
    assert status.reason_of(kube_errors.NotFound("x")) == "NOT_FOUND"
    assert status.reason_of(ValueError("x")) == "VALUE"
    assert status.reason_of(type("Error", (Exception,), {})()) == "ERROR"


class RaisingPuller(puller_pb2_grpc.PullerServicer):
    """Raises whatever the test puts in `error`; PullImage first sends one message."""

    error: BaseException = RuntimeError("set by the test")

    def ListImages(self, request, context):
        if request.image == "abort":
            context.abort(grpc.StatusCode.NOT_FOUND, "aborted by the servicer")
        raise self.error

    def PullImage(self, request, context):
        yield puller_pb2.PullProgress(phase=puller_pb2.PullProgress.WAITING)
        raise self.error

    def ImageStatus(self, request, context):
        raise NotImplementedError


@pytest.fixture
def puller():
    servicer = RaisingPuller()
    table = status.DEFAULT_TABLE.extended({ImageNotAssignedError: grpc.StatusCode.PERMISSION_DENIED})
    server, port = rpc_server.create_server(
        "127.0.0.1:0",
        [(puller_pb2_grpc.add_PullerServicer_to_server, servicer)],
        interceptors=[status.StatusInterceptor(table)],
    )
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield servicer, puller_pb2_grpc.PullerStub(channel)
    server.stop(0).wait()


def fail(call, *args) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(*args)
    return raised.value


def test_domain_errors_become_their_status_with_message_and_reason(puller):
    servicer, stub = puller
    servicer.error = imageref.InvalidImageReference("invalid reference format", "UPPER:case")

    error = fail(stub.ListImages, puller_pb2.ListImagesRequest(), 10)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == str(servicer.error)
    assert status.error_reason(error) == "INVALID_IMAGE_REFERENCE"


def test_service_specific_errors_use_the_extended_table(puller):
    servicer, stub = puller
    servicer.error = ImageNotAssignedError("image is not assigned to node-a")

    error = fail(stub.ListImages, puller_pb2.ListImagesRequest(), 10)

    assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, "image is not assigned to node-a")
    assert status.error_reason(error) == "IMAGE_NOT_ASSIGNED"


def test_unexpected_errors_are_internal_without_detail_and_logged(puller, caplog):
    servicer, stub = puller
    servicer.error = RuntimeError("connection to 10.0.0.7 failed with password=hunter2")

    with caplog.at_level(logging.ERROR, logger=status.__name__):
        error = fail(stub.ListImages, puller_pb2.ListImagesRequest(), 10)

    assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, "internal error")
    assert status.error_reason(error) == "INTERNAL"
    assert any(record.exc_info and record.exc_info[1] is servicer.error for record in caplog.records)


def test_messages_are_redacted_even_from_domain_errors(puller):
    servicer, stub = puller
    servicer.error = credentials.InvalidPullSecret("ns/regcred", "bad entry auth=dXNlcjpwYXNz")

    error = fail(stub.ListImages, puller_pb2.ListImagesRequest(), 10)

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "dXNlcjpwYXNz" not in error.details()
    assert "ns/regcred" in error.details()


def test_a_servicer_abort_keeps_its_own_status(puller):
    _, stub = puller

    error = fail(stub.ListImages, puller_pb2.ListImagesRequest(image="abort"), 10)

    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, "aborted by the servicer")
    assert status.error_reason(error) is None


def test_streams_end_with_the_mapped_status_after_what_was_sent(puller):
    servicer, stub = puller
    servicer.error = kube_errors.Gone("too old resource version")
    received = []

    with pytest.raises(grpc.RpcError) as raised:
        for message in stub.PullImage(puller_pb2.PullImageRequest(image="x"), timeout=10):
            received.append(message.phase)

    assert received == [puller_pb2.PullProgress.WAITING]
    assert raised.value.code() == grpc.StatusCode.ABORTED
    assert status.error_reason(raised.value) == "GONE"
