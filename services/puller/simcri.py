"""A simulated CRI runtime: `runtime.v1` ImageService and RuntimeService.Version, with no real images.

For scale and fault tests (issue 6, item 8): the puller's code is unchanged, only its `--cri-socket` points
here. Every pull takes `pull_latency` seconds (cut short if the caller cancels or its deadline passes),
fails with probability `failure_rate`, and on success records an image of `image_size` bytes whose id is
derived from the reference, so the same reference always gets the same id. `ImageFsInfo` reports
`mountpoint` and `base_used_bytes` plus the sizes of the images held. `in_flight` / `max_in_flight` count
concurrent pulls, which is how tests check the puller's concurrency limit.

Run it standalone with `python -m services.puller.simcri --socket /tmp/sim.sock --pull-latency 2s`.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from services.shared import settings as shared_settings
from services.shared.gen.cri import api_pb2, api_pb2_grpc

__all__ = ["SimulatedRuntime", "SimulationSettings", "serve"]

RUNTIME_NAME = "prepull-simcri"
CANCEL_CHECK_SECONDS = 0.02


@dataclass(frozen=True)
class SimulationSettings:
    """How the simulated runtime behaves."""

    pull_latency: float = 0.5
    """Seconds every successful or failing pull takes."""
    image_size: int = 20 << 20
    """Bytes each pulled image occupies."""
    failure_rate: float = 0.0
    """Probability (0 to 1) that a pull fails with UNKNOWN, as a registry error would."""
    missing_prefix: str = "missing/"
    """References whose repository path starts with this fail with NOT_FOUND, like a missing tag."""
    mountpoint: str = "/var/lib/prepull-simcri"
    """Image filesystem mountpoint reported by ImageFsInfo."""
    base_used_bytes: int = 0
    """Bytes reported used before any pull."""
    seed: int | None = None
    """Seed of the failure coin, for reproducible runs."""


@dataclass
class _Image:
    id: str
    repo_tags: set[str] = field(default_factory=set)
    repo_digests: set[str] = field(default_factory=set)
    size: int = 0


class SimulatedRuntime(api_pb2_grpc.ImageServiceServicer, api_pb2_grpc.RuntimeServiceServicer):
    """The servicer of both CRI services; thread-safe."""

    def __init__(self, settings: SimulationSettings | None = None) -> None:
        self.settings = settings or SimulationSettings()
        self._rng = random.Random(self.settings.seed)
        self._lock = threading.Lock()
        self._images: dict[str, _Image] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.pulls = 0

    # --- RuntimeService ---------------------------------------------------------------------------------

    def Version(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 -- CRI method name
        """Name and versions; the API version is v1, like a real runtime."""
        return api_pb2.VersionResponse(
            version="0.1.0", runtime_name=RUNTIME_NAME, runtime_version="0.1.0", runtime_api_version="v1"
        )

    # --- ImageService -----------------------------------------------------------------------------------

    def PullImage(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 -- CRI method name
        """Wait the latency (or until cancelled), then fail or record the image."""
        reference = request.image.image
        with self._lock:
            self.pulls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fails = self._rng.random() < self.settings.failure_rate
        try:
            ends = time.monotonic() + self.settings.pull_latency
            while time.monotonic() < ends:
                if not context.is_active():
                    return api_pb2.PullImageResponse()
                time.sleep(min(CANCEL_CHECK_SECONDS, max(0.0, ends - time.monotonic())))
        finally:
            with self._lock:
                self.in_flight -= 1
        if _repository(reference).startswith(self.settings.missing_prefix):
            context.abort(grpc.StatusCode.NOT_FOUND, f"failed to resolve reference {reference!r}: not found")
        if fails:
            context.abort(grpc.StatusCode.UNKNOWN, f"failed to pull image {reference!r}: simulated registry failure")
        return api_pb2.PullImageResponse(image_ref=self._store(reference).id)

    def ImageStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 -- CRI method name
        """The image a tag, digest or id names; empty when absent."""
        image = self._find(request.image.image)
        return api_pb2.ImageStatusResponse(image=_message(image)) if image else api_pb2.ImageStatusResponse()

    def ListImages(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 -- CRI method name
        """Every image held."""
        with self._lock:
            images = list(self._images.values())
        return api_pb2.ListImagesResponse(images=[_message(image) for image in images])

    def RemoveImage(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 -- CRI method name
        """Forget an image; absent is fine."""
        image = self._find(request.image.image)
        if image is not None:
            with self._lock:
                self._images.pop(image.id, None)
        return api_pb2.RemoveImageResponse()

    def ImageFsInfo(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 -- CRI method name
        """The configured mountpoint; used bytes grow with the images held."""
        with self._lock:
            used = self.settings.base_used_bytes + sum(image.size for image in self._images.values())
        usage = api_pb2.FilesystemUsage(
            timestamp=time.time_ns(),
            fs_id=api_pb2.FilesystemIdentifier(mountpoint=self.settings.mountpoint),
            used_bytes=api_pb2.UInt64Value(value=used),
        )
        return api_pb2.ImageFsInfoResponse(image_filesystems=[usage])

    # --- the image store -------------------------------------------------------------------------------

    def _store(self, reference: str) -> _Image:
        name = _name_of(reference)
        image_id = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
        digest = "sha256:" + hashlib.sha256(("manifest:" + name).encode()).hexdigest()
        with self._lock:
            image = self._images.setdefault(image_id, _Image(id=image_id, size=self.settings.image_size))
            if "@" in reference:
                image.repo_digests.add(reference)
            else:
                image.repo_tags.add(reference)
            image.repo_digests.add(f"{name}@{digest}")
            return image

    def _find(self, reference: str) -> _Image | None:
        with self._lock:
            for image in self._images.values():
                if reference in (image.id, *image.repo_tags, *image.repo_digests):
                    return image
        return None


def _name_of(reference: str) -> str:
    """`reg:5000/a/b:v1` and `reg:5000/a/b@sha256:…` → `reg:5000/a/b`."""
    name = reference.partition("@")[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def _repository(reference: str) -> str:
    without_registry = reference.split("/", 1)[1] if "/" in reference else reference
    return without_registry


def _message(image: _Image) -> Any:
    return api_pb2.Image(
        id=image.id, repo_tags=sorted(image.repo_tags), repo_digests=sorted(image.repo_digests), size=image.size
    )


def serve(address: str, runtime: SimulatedRuntime, *, max_workers: int = 64) -> grpc.Server:
    """Start serving `runtime` on `address` (`unix:///path.sock` or `127.0.0.1:0`); returns the started server."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="simcri"))
    api_pb2_grpc.add_ImageServiceServicer_to_server(runtime, server)
    api_pb2_grpc.add_RuntimeServiceServicer_to_server(runtime, server)
    server.add_insecure_port(address)
    server.start()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a simulated runtime until interrupted."""
    flags = argparse.ArgumentParser(prog="prepull-simcri", description=__doc__.splitlines()[0])
    flags.add_argument("--socket", required=True, help="unix socket path to serve on")
    flags.add_argument("--pull-latency", type=shared_settings.duration, default="500ms", help="time every pull takes")
    flags.add_argument("--image-size", type=int, default=20 << 20, help="bytes per pulled image")
    flags.add_argument("--failure-rate", type=float, default=0.0, help="probability that a pull fails")
    flags.add_argument("--mountpoint", default="/var/lib/prepull-simcri", help="ImageFsInfo mountpoint")
    flags.add_argument("--used-bytes", type=int, default=0, help="ImageFsInfo used bytes before any pull")
    args = flags.parse_args(sys.argv[1:] if argv is None else argv)
    runtime = SimulatedRuntime(
        SimulationSettings(
            pull_latency=args.pull_latency.total_seconds(),
            image_size=args.image_size,
            failure_rate=args.failure_rate,
            mountpoint=args.mountpoint,
            base_used_bytes=args.used_bytes,
        )
    )
    server = serve(f"unix://{args.socket}", runtime)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
