"""The container runtime, seen through CRI v1 `ImageService` (and `RuntimeService.Version`) on a unix socket.

`ImageService` is the seam (style principle 12): the workers and the servicer depend on this Protocol with
only the calls we make, and `CriImageService` is the production adapter over our own `runtime.v1` stubs
(design §6). The simulated runtime (`simcri`) speaks the same wire protocol, so the adapter is the same for
both.

Domain types (`RuntimeImage`, `Auth`, …) keep generated messages out of the rest of the puller. Failures are
`RuntimeError_` subclasses whose message is meant for a person: the status and event text of a failed
pull. `Auth` never shows its secrets in `repr`, and no message built here contains them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from opentelemetry import trace

from services.puller.logic import diskguard
from services.shared.api import constants
from services.shared.api.pulloptions import SandboxConfig
from services.shared.gen.cri import api_pb2, api_pb2_grpc
from services.shared.telemetry import instrumentation

__all__ = [
    "Auth",
    "CriImageService",
    "FilesystemUsage",
    "ImageService",
    "PullCancelled",
    "PullFailed",
    "RuntimeImage",
    "RuntimeUnavailable",
    "RuntimeVersion",
    "free_space",
    "pull_error",
]

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Upstream's CRI client limit: ListImages on a node with thousands of images exceeds gRPC's 4 MiB default."""

CANCEL_POLL_SECONDS = 0.05
"""How often a pull in flight checks whether its worker was stopped; cancellation is that prompt."""


class RuntimeError_(Exception):  # noqa: N801,N818 -- trailing underscore: not the builtin RuntimeError
    """A runtime call failed; `str()` says why, in words meant for a person (never with credentials)."""


class RuntimeUnavailable(RuntimeError_):
    """The runtime cannot be reached (socket missing, runtime restarting)."""


class PullFailed(RuntimeError_):
    """The runtime refused or failed the pull (not found, unauthorized, registry down, timed out)."""


class PullCancelled(RuntimeError_):
    """The pull was cancelled because its worker was stopped (tag removed, version bumped, shutdown)."""


@dataclass(frozen=True)
class RuntimeImage:
    """One image as the runtime holds it; `id` is the runtime's image id (`sha256:<config digest>`)."""

    id: str
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    size: int = 0


@dataclass(frozen=True)
class Auth:
    """Registry credentials for one pull, shaped like CRI's AuthConfig; secrets are kept out of `repr`."""

    username: str = ""
    password: str = field(default="", repr=False)
    auth: str = field(default="", repr=False)
    server_address: str = ""
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)
    source: str = ""
    """Which pull secret this came from (`namespace/name`); safe to log."""


@dataclass(frozen=True)
class FilesystemUsage:
    """One image filesystem as `ImageFsInfo` reports it."""

    mountpoint: str
    used_bytes: int


@dataclass(frozen=True)
class RuntimeVersion:
    """`RuntimeService.Version`'s answer."""

    runtime_name: str
    runtime_version: str
    runtime_api_version: str


class ImageService(Protocol):
    """The runtime calls the puller makes. Every method raises `RuntimeError_` subclasses on failure."""

    def pull_image(
        self,
        reference: str,
        *,
        auth: Auth | None,
        sandbox: SandboxConfig | None,
        timeout: float,
        cancel: threading.Event,
    ) -> str:
        """Pull `reference`; returns the runtime's image reference (containerd: the image id).

        Raises:
            PullFailed: the runtime failed the pull, or it took longer than `timeout` seconds.
            PullCancelled: `cancel` was set while pulling; the runtime's pull is cancelled too.
            RuntimeUnavailable: the runtime cannot be reached.
        """
        ...

    def image_status(self, reference: str) -> RuntimeImage | None:
        """The image `reference` (tag, digest or id) names, or None when the runtime does not have it."""
        ...

    def list_images(self) -> list[RuntimeImage]:
        """Every image the runtime holds."""
        ...

    def image_fs_info(self) -> list[FilesystemUsage]:
        """The filesystems holding images."""
        ...

    def version(self) -> RuntimeVersion:
        """The runtime's name and versions (proves it speaks CRI v1)."""
        ...


class CriImageService:
    """`ImageService` over CRI v1 gRPC.

    Args:
        target: a gRPC target, e.g. `unix:///run/containerd/containerd.sock`; a bare path is taken as a socket.
        call_timeout: seconds allowed to every call except `PullImage` (which gets its own timeout).
        tracer_provider: where CRI call spans go; the process-wide provider when None.
    """

    def __init__(
        self, target: str, *, call_timeout: float = 30.0, tracer_provider: trace.TracerProvider | None = None
    ) -> None:
        self.target = socket_target(target)
        self._call_timeout = call_timeout
        self._channel = grpc.insecure_channel(
            self.target,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        traced = instrumentation.trace_channel(self._channel, tracer_provider)
        self._images = api_pb2_grpc.ImageServiceStub(traced)
        self._runtime = api_pb2_grpc.RuntimeServiceStub(traced)

    @property
    def channel(self) -> grpc.Channel:
        """The untraced channel to the runtime's socket (containerd serves its own API on it too; see `progress`).

        CRI calls made through this adapter are traced (`/runtime.v1.ImageService/PullImage` spans, children of
        the pull's task span); progress polling on this channel is not, or it would bury the trace.
        """
        return self._channel

    def close(self) -> None:
        """Close the channel; calls in flight fail."""
        self._channel.close()

    def pull_image(
        self,
        reference: str,
        *,
        auth: Auth | None,
        sandbox: SandboxConfig | None,
        timeout: float,
        cancel: threading.Event,
    ) -> str:
        """See `ImageService.pull_image`."""
        request = api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=reference),
            auth=_auth_message(auth) if auth is not None else None,
            sandbox_config=sandbox_message(sandbox),
        )
        future = self._images.PullImage.future(request, timeout=timeout)
        finished = threading.Event()
        future.add_done_callback(lambda _: finished.set())
        while not finished.wait(CANCEL_POLL_SECONDS):  # the answer wakes us at once; the poll is for `cancel`
            if cancel.is_set():
                future.cancel()
                raise PullCancelled(f"pulling image {reference} is canceled")
        try:
            response = future.result()
        except grpc.RpcError as error:
            raise _pull_error(reference, error, timeout) from None
        except grpc.FutureCancelledError:
            raise PullCancelled(f"pulling image {reference} is canceled") from None
        return str(response.image_ref)

    def image_status(self, reference: str) -> RuntimeImage | None:
        """See `ImageService.image_status`."""
        response = self._call(
            self._images.ImageStatus, api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=reference))
        )
        return runtime_image(response.image) if response.HasField("image") and response.image.id else None

    def list_images(self) -> list[RuntimeImage]:
        """See `ImageService.list_images`."""
        response = self._call(self._images.ListImages, api_pb2.ListImagesRequest())
        return [runtime_image(image) for image in response.images]

    def image_fs_info(self) -> list[FilesystemUsage]:
        """See `ImageService.image_fs_info`."""
        response = self._call(self._images.ImageFsInfo, api_pb2.ImageFsInfoRequest())
        return [
            FilesystemUsage(mountpoint=usage.fs_id.mountpoint, used_bytes=int(usage.used_bytes.value))
            for usage in response.image_filesystems
        ]

    def version(self) -> RuntimeVersion:
        """See `ImageService.version`."""
        response = self._call(self._runtime.Version, api_pb2.VersionRequest(version="v1"))
        return RuntimeVersion(
            runtime_name=response.runtime_name,
            runtime_version=response.runtime_version,
            runtime_api_version=response.runtime_api_version,
        )

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self._call_timeout)
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise RuntimeUnavailable(f"container runtime at {self.target} unavailable: {error.details()}") from None
            raise RuntimeError_(f"container runtime call failed: {error.code().name}: {error.details()}") from None


def socket_target(target: str) -> str:
    """A gRPC target for a runtime endpoint: a bare path becomes `unix://<path>`."""
    return f"unix://{target}" if target.startswith("/") else target


def sandbox_message(sandbox: SandboxConfig | None) -> Any:
    """The pull's PodSandboxConfig: the tag's labels and annotations, plus our `pulling-image-by` mark."""
    labels: Mapping[str, str] = (sandbox.labels if sandbox else None) or {}
    annotations = dict((sandbox.annotations if sandbox else None) or {})
    annotations[constants.SANDBOX_ANNOTATION_PULLED_BY] = constants.SANDBOX_ANNOTATION_PULLED_BY_VALUE
    return api_pb2.PodSandboxConfig(labels=dict(labels), annotations=annotations)


def runtime_image(image: Any) -> RuntimeImage:
    """A CRI `Image` message as a `RuntimeImage`."""
    return RuntimeImage(
        id=image.id,
        repo_tags=tuple(image.repo_tags),
        repo_digests=tuple(image.repo_digests),
        size=int(image.size),
    )


def free_space(images: ImageService) -> diskguard.DiskSpace | None:
    """Free bytes of the runtime's image filesystem (`ImageFsInfo` mountpoint, then `statvfs` on it).

    None when it cannot be measured (no mountpoint reported, or it is not visible from here), which lets the
    pull go ahead: the guard protects the disk, it must not block every pull on a node we cannot see.
    """
    try:
        usages = images.image_fs_info()
    except RuntimeError_:
        return None
    spaces: Sequence[diskguard.DiskSpace] = [
        space for space in (_statvfs(usage.mountpoint) for usage in usages) if space is not None
    ]
    return min(spaces, key=lambda space: space.free_bytes) if spaces else None


def _statvfs(mountpoint: str) -> diskguard.DiskSpace | None:
    path = mountpoint
    while path and not os.path.exists(path):  # the snapshotter directory may not exist before the first pull
        parent = os.path.dirname(path)
        path = "" if parent == path else parent
    if not path:
        return None
    stats = os.statvfs(path)
    return diskguard.DiskSpace(mountpoint=mountpoint, free_bytes=stats.f_bavail * stats.f_frsize)


def _auth_message(auth: Auth) -> Any:
    return api_pb2.AuthConfig(
        username=auth.username,
        password=auth.password,
        auth=auth.auth,
        server_address=auth.server_address,
        identity_token=auth.identity_token,
        registry_token=auth.registry_token,
    )


def _pull_error(reference: str, error: grpc.RpcError, timeout: float) -> RuntimeError_:
    return pull_error(reference, error.code(), error.details() or "", timeout=timeout)


def pull_error(reference: str, code: grpc.StatusCode, details: str, *, timeout: float) -> RuntimeError_:
    """What `pull_image` raises for a PullImage that ended with `code` and `details` (runtimes in tests use it too)."""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return PullFailed(f"pulling image {reference} timed out after {_seconds(timeout)}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return RuntimeUnavailable(f"container runtime unavailable while pulling {reference}: {details}")
    if code == grpc.StatusCode.CANCELLED:
        return PullFailed(f"pulling image {reference} was cancelled by the runtime: {details}")
    return PullFailed(f"failed to pull image {reference}: {details or code.name}")


def _seconds(duration: float) -> str:
    """A timeout as people read it: whole seconds (`2s`), tenths below one second (`0.4s`)."""
    return f"{duration:.0f}s" if duration >= 1 else f"{duration:.1f}s"
