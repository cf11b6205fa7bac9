"""A node's simulated runtime called in-process: the puller's `cri.ImageService` over `simcri.SimulatedRuntime`.

The fan-out benchmark hosts hundreds of node agents in one process. One gRPC server per node would cost a
completion-queue thread and a socket each, and a shared server cannot tell nodes apart, so each agent gets its
own `SimulatedRuntime` (the puller issue's simulated CRI: same latency, image ids and store) called directly.
Only the CRI hop is skipped; everything above the `ImageService` seam is the puller's unchanged code. The CRI
hop itself is measured against real containerd in the pull-overhead benchmark.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc

from services.puller import cri
from services.puller.simcri import SimulatedRuntime
from services.shared.api.pulloptions import SandboxConfig
from services.shared.gen.cri import api_pb2


class _AbortedError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _Call:
    """The part of `grpc.ServicerContext` the simulated runtime uses: liveness and abort."""

    def __init__(self, cancel: threading.Event | None = None) -> None:
        self._cancel = cancel or threading.Event()

    def is_active(self) -> bool:
        return not self._cancel.is_set()

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _AbortedError(code, details)


class SimulatedImages:
    """`cri.ImageService` backed by one node's `SimulatedRuntime`, without gRPC in between."""

    def __init__(self, runtime: SimulatedRuntime) -> None:
        self.runtime = runtime

    def pull_image(
        self,
        reference: str,
        *,
        auth: cri.Auth | None,
        sandbox: SandboxConfig | None,
        timeout: float,
        cancel: threading.Event,
    ) -> str:
        """See `cri.ImageService.pull_image`."""
        if self.runtime.settings.pull_latency > timeout:
            raise cri.PullFailed(f"pulling image {reference} timed out")
        request = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=reference))
        try:
            response = self.runtime.PullImage(request, _Call(cancel))
        except _AbortedError as error:
            raise cri.PullFailed(f"failed to pull image {reference}: {error.details}") from None
        if cancel.is_set():
            raise cri.PullCancelled(f"pulling image {reference} is canceled")
        return str(response.image_ref)

    def image_status(self, reference: str) -> cri.RuntimeImage | None:
        """See `cri.ImageService.image_status`."""
        request = api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=reference))
        response = self.runtime.ImageStatus(request, _Call())
        return cri.runtime_image(response.image) if response.HasField("image") and response.image.id else None

    def list_images(self) -> list[cri.RuntimeImage]:
        """See `cri.ImageService.list_images`."""
        response = self.runtime.ListImages(api_pb2.ListImagesRequest(), _Call())
        return [cri.runtime_image(image) for image in response.images]

    def image_fs_info(self) -> list[cri.FilesystemUsage]:
        """See `cri.ImageService.image_fs_info`."""
        response: Any = self.runtime.ImageFsInfo(api_pb2.ImageFsInfoRequest(), _Call())
        return [
            cri.FilesystemUsage(mountpoint=usage.fs_id.mountpoint, used_bytes=int(usage.used_bytes.value))
            for usage in response.image_filesystems
        ]

    def version(self) -> cri.RuntimeVersion:
        """See `cri.ImageService.version`."""
        response = self.runtime.Version(api_pb2.VersionRequest(version="v1"), _Call())
        return cri.RuntimeVersion(
            runtime_name=response.runtime_name,
            runtime_version=response.runtime_version,
            runtime_api_version=response.runtime_api_version,
        )
