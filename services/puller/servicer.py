"""The node-local `prepull.v1.Puller` service: a thin adapter between protobuf and `localpull.LocalPulls`.

Authentication and authorization happen before a method runs (`policies`, applied by the shared auth
interceptor): callers present a token for the puller's audience, and SubjectAccessReview must allow `update`
(pulls) or `get` (status, list) on this node's NodeImage. Errors become statuses through `STATUS_TABLE`:
a bad reference is INVALID_ARGUMENT, a disk-guard refusal RESOURCE_EXHAUSTED, an unreachable runtime
UNAVAILABLE. A pull that starts and then fails is not an RPC error: the stream ends with a FAILED message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc

from services.puller import cri, localpull
from services.shared.api import constants, imageref
from services.shared.api.pulloptions import SandboxConfig
from services.shared.auth import policy
from services.shared.auth.subjectaccess import ResourceAccess
from services.shared.gen.prepull.v1 import puller_pb2, puller_pb2_grpc, types_pb2
from services.shared.rpc import status

__all__ = ["STATUS_TABLE", "PullerServicer", "policies"]

SERVICE = "prepull.v1.Puller"
DEFAULT_TIMEOUT_SECONDS = constants.DEFAULT_PULL_TIMEOUT_SECONDS

STATUS_TABLE = status.DEFAULT_TABLE.extended(
    {
        localpull.DiskGuardRefused: grpc.StatusCode.RESOURCE_EXHAUSTED,
        cri.RuntimeUnavailable: grpc.StatusCode.UNAVAILABLE,
        cri.RuntimeError_: grpc.StatusCode.UNAVAILABLE,
    }
)

_PHASES = {
    localpull.PullPhase.WAITING: puller_pb2.PullProgress.WAITING,
    localpull.PullPhase.PULLING: puller_pb2.PullProgress.PULLING,
    localpull.PullPhase.SUCCEEDED: puller_pb2.PullProgress.SUCCEEDED,
    localpull.PullPhase.FAILED: puller_pb2.PullProgress.FAILED,
}


def policies(node_name: str, audience: str) -> policy.PolicyTable:
    """Design §2: Puller methods need RBAC on this node's NodeImage (`update` to pull, `get` to read)."""

    def on_node_image(verb: str) -> policy.MethodPolicy:
        access = ResourceAccess(verb=verb, resource=constants.PLURAL_NODE_IMAGES, group=constants.GROUP, name=node_name)
        return policy.MethodPolicy(audience=audience, access=access)

    return policy.PolicyTable(
        {
            f"/{SERVICE}/PullImage": on_node_image("update"),
            f"/{SERVICE}/ImageStatus": on_node_image("get"),
            f"/{SERVICE}/ListImages": on_node_image("get"),
        }
    )


class PullerServicer(puller_pb2_grpc.PullerServicer):
    """`prepull.v1.Puller` over `LocalPulls`."""

    def __init__(self, pulls: localpull.LocalPulls) -> None:
        self._pulls = pulls

    def PullImage(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802 -- gRPC name
        """Stream the pull's progress; cancelling the call cancels the pull."""
        cancel = threading.Event()
        context.add_callback(cancel.set)
        pull = localpull.LocalPullRequest(
            reference=imageref.parse(request.image),
            always=request.pull_policy == types_pb2.IMAGE_PULL_POLICY_ALWAYS,
            sandbox=_sandbox(request),
            credentials=tuple(_auth(credential) for credential in request.credentials),
            timeout_seconds=float(request.timeout_seconds or DEFAULT_TIMEOUT_SECONDS),
        )
        try:
            for update in self._pulls.pull(pull, cancel):
                yield _progress(update)
        finally:
            cancel.set()

    def ImageStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 -- gRPC name
        """The image as this node's runtime holds it; `image` unset when absent."""
        found = self._pulls.image_status(request.image)
        return puller_pb2.ImageStatusResponse(image=_image(found)) if found else puller_pb2.ImageStatusResponse()

    def ListImages(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 -- gRPC name
        """The images this node's runtime holds."""
        return puller_pb2.ListImagesResponse(images=[_image(image) for image in self._pulls.list_images(request.image)])


def _sandbox(request: Any) -> SandboxConfig | None:
    if not request.HasField("sandbox_config"):
        return None
    config = request.sandbox_config
    return SandboxConfig(labels=dict(config.labels) or None, annotations=dict(config.annotations) or None)


def _auth(credential: Any) -> cri.Auth:
    return cri.Auth(
        username=credential.username,
        password=credential.password,
        auth=credential.auth,
        identity_token=credential.identity_token,
        registry_token=credential.registry_token,
    )


def _image(image: cri.RuntimeImage) -> Any:
    return types_pb2.Image(
        digest=image.id, repo_tags=image.repo_tags, repo_digests=image.repo_digests, size_bytes=image.size
    )


def _progress(update: localpull.PullUpdate) -> Any:
    message = puller_pb2.PullProgress(
        phase=_PHASES[update.phase],
        bytes_available=update.bytes_available,
        bytes_done=update.bytes_done,
        bytes_total=update.bytes_total,
        already_present=update.already_present,
        message=update.message,
    )
    if update.image is not None:
        message.image.CopyFrom(_image(update.image))
    return message
