"""One simulated node's container runtime, called in-process, that remembers its pulls across process deaths.

Fault tests host many node agents per process (`localcluster.simnodes`) and kill those processes with SIGKILL.
Two things must outlive such a kill, as they outlive a puller restart on a real node:

- the count of pull attempts per node and image, so a test can check exactly that no node pulled more often
  than the retries allow. Every attempt is appended to the node's *journal* (one line per event, written
  with one `write(2)` on an `O_APPEND` descriptor: the kernel keeps it even if the process dies a moment later);
- the images already pulled, as containerd keeps them on disk: a restarted agent finds them again (the
  journal is replayed into a fresh `simcri.SimulatedRuntime`).

A test can also *hold* a node's pulls (a file next to the journal): a pull that starts while the file exists
waits until it is removed, or until the pull is cancelled or times out. That turns "the job is still running
when X happens" from a timing guess into a fact the test arranges.

Only the CRI hop is skipped: the puller above `cri.ImageService` is unchanged, and the simulated runtime's
latency, image ids and store are `services.puller.simcri`'s.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from services.puller import cri
from services.puller.simcri import SimulatedRuntime, SimulationSettings
from services.shared.api.pulloptions import SandboxConfig
from services.shared.gen.cri import api_pb2

__all__ = ["HELD_POLL_SECONDS", "JournaledImages", "PullJournal"]

HELD_POLL_SECONDS = 0.05
STARTED, PULLED, FAILED, CANCELLED = "start", "pulled", "failed", "cancelled"


@dataclass(frozen=True)
class PullJournal:
    """The files of one node under a journal directory: `<node>.pulls` (events) and `<node>.hold` (the hold)."""

    directory: Path
    node: str

    @property
    def path(self) -> Path:
        return self.directory / f"{self.node}.pulls"

    @property
    def hold_path(self) -> Path:
        return self.directory / f"{self.node}.hold"

    def record(self, event: str, reference: str) -> None:
        """Append one event line; one `write` on an append-only descriptor, so lines never interleave."""
        line = f"{time.time():.3f}\t{event}\t{reference}\n".encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def events(self) -> list[tuple[str, str]]:
        """Every `(event, reference)` recorded, oldest first; none when the node never pulled."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [
            (fields[1], fields[2]) for fields in (line.split("\t") for line in text.splitlines()) if len(fields) == 3
        ]

    def attempts(self) -> Counter[str]:
        """Pull attempts per reference: every attempt that started, whatever became of it."""
        return Counter(reference for event, reference in self.events() if event == STARTED)

    def in_flight(self, reference: str) -> bool:
        """True when the last event of `reference` is the start of an attempt (a pull runs, or its process died)."""
        last = [event for event, pulled in self.events() if pulled == reference][-1:]
        return last == [STARTED]

    def pulled(self) -> list[str]:
        """References pulled successfully, in order (a reference pulled twice appears twice)."""
        return [reference for event, reference in self.events() if event == PULLED]

    def hold(self) -> None:
        """From now on, pulls on this node wait (see the module docstring)."""
        self.hold_path.touch()

    def release(self) -> None:
        self.hold_path.unlink(missing_ok=True)

    def held(self) -> bool:
        return self.hold_path.exists()


class _RestorableRuntime(SimulatedRuntime):
    """`SimulatedRuntime` whose store can be refilled with images pulled before the process started."""

    def restore(self, reference: str) -> None:
        self._store(reference)


class _AbortedError(Exception):
    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


class _Call:
    """What `SimulatedRuntime` asks of a gRPC call context: is the caller still waiting, and abort."""

    def __init__(self, cancel: threading.Event | None = None, deadline: float | None = None) -> None:
        self._cancel = cancel or threading.Event()
        self._deadline = deadline

    def is_active(self) -> bool:
        expired = self._deadline is not None and time.monotonic() >= self._deadline
        return not (self._cancel.is_set() or expired)

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _AbortedError(details)


class JournaledImages:
    """`cri.ImageService` of one simulated node: a `SimulatedRuntime` called directly, every pull journaled."""

    def __init__(self, journal: PullJournal, settings: SimulationSettings) -> None:
        self.journal = journal
        self.runtime = _RestorableRuntime(settings)
        for reference in journal.pulled():
            self.runtime.restore(reference)

    def pull_image(
        self,
        reference: str,
        *,
        auth: cri.Auth | None,
        sandbox: SandboxConfig | None,
        timeout: float,
        cancel: threading.Event,
    ) -> str:
        """See `cri.ImageService.pull_image`: waits out a hold, then the runtime's latency; journals the outcome."""
        self.journal.record(STARTED, reference)
        deadline = time.monotonic() + timeout
        call = _Call(cancel, deadline)
        while self.journal.held() and call.is_active():
            time.sleep(HELD_POLL_SECONDS)
        try:
            if not call.is_active():
                raise self._interrupted(reference, cancel)
            if time.monotonic() + self.runtime.settings.pull_latency > deadline:
                self.journal.record(FAILED, reference)
                raise cri.PullFailed(f"pulling image {reference} timed out")
            response = self.runtime.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=reference)), call)
            if not call.is_active():
                raise self._interrupted(reference, cancel)
        except _AbortedError as error:
            self.journal.record(FAILED, reference)
            raise cri.PullFailed(f"failed to pull image {reference}: {error.details}") from None
        self.journal.record(PULLED, reference)
        return str(response.image_ref)

    def _interrupted(self, reference: str, cancel: threading.Event) -> cri.RuntimeError_:
        """The error for a pull its caller gave up on (cancelled) or whose timeout passed (failed)."""
        if cancel.is_set():
            self.journal.record(CANCELLED, reference)
            return cri.PullCancelled(f"pulling image {reference} is canceled")
        self.journal.record(FAILED, reference)
        return cri.PullFailed(f"pulling image {reference} timed out")

    def image_status(self, reference: str) -> cri.RuntimeImage | None:
        """See `cri.ImageService.image_status`."""
        response = self.runtime.ImageStatus(
            api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=reference)), _Call()
        )
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
