"""Node-local pulls for platform services (the `Puller` gRPC API), sharing the job pulls' slots and disk guard.

A local pull is ad hoc: no NodeImage entry, no retries, no status on any object. It queues for one of the
same `--workers` slots as the pulls done for jobs, is refused up front by the disk guard, honours
`IfNotPresent` with CRI `ImageStatus` (digests count), and reports its progress as a stream of `PullUpdate`s:
`WAITING`, then `PULLING` (with byte counts where the runtime exposes them), then exactly one final
`SUCCEEDED` or `FAILED`. Setting `cancel` (the caller went away) cancels the CRI call.
"""

from __future__ import annotations

import contextlib
import enum
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from services.puller import cri, workers
from services.puller.logic import diskguard
from services.shared.api import imageref
from services.shared.api.pulloptions import SandboxConfig
from services.shared.clock import Clock, SystemClock

__all__ = ["DiskGuardRefused", "LocalPullRequest", "LocalPulls", "PullPhase", "PullUpdate"]


class DiskGuardRefused(Exception):  # noqa: N818 -- a refusal, reported as RESOURCE_EXHAUSTED
    """The disk guard refused the pull; the message says how much is free and what the threshold is."""


class PullPhase(enum.Enum):
    """Where a local pull is."""

    WAITING = "Waiting"
    PULLING = "Pulling"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class LocalPullRequest:
    """One ad hoc pull."""

    reference: imageref.ImageReference
    always: bool = False
    sandbox: SandboxConfig | None = None
    credentials: tuple[cri.Auth, ...] = ()
    timeout_seconds: float = 600.0


@dataclass(frozen=True)
class PullUpdate:
    """One step of a local pull; `image` is set on SUCCEEDED, `message` on FAILED."""

    phase: PullPhase
    image: cri.RuntimeImage | None = None
    already_present: bool = False
    message: str = ""
    bytes_available: bool = False
    bytes_done: int = 0
    bytes_total: int = 0
    layers: tuple[tuple[str, int, int], ...] = field(default=())


class LocalPulls:
    """The application functions behind the `Puller` service."""

    def __init__(
        self,
        images: cri.ImageService,
        slots: workers.PullSlots,
        *,
        min_free_disk_bytes: int = 0,
        progress: workers.ProgressTracker | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._images = images
        self._slots = slots
        self._min_free = min_free_disk_bytes
        self._progress = progress
        self._clock = clock or SystemClock()

    def image_status(self, text: str) -> cri.RuntimeImage | None:
        """The image a reference or id names, or None. Raises `imageref.InvalidImageReference`."""
        return self._images.image_status(_runtime_name(text))

    def list_images(self, text: str = "") -> list[cri.RuntimeImage]:
        """Every image, or those a reference names."""
        if not text:
            return self._images.list_images()
        found = self.image_status(text)
        return [found] if found is not None else []

    def pull(self, request: LocalPullRequest, cancel: threading.Event) -> Iterator[PullUpdate]:
        """Run the pull, yielding its updates; see the module docstring.

        Raises:
            DiskGuardRefused: before anything is yielded, when the image filesystem is too full.
        """
        refusal = diskguard.refusal(cri.free_space(self._images), min_free_bytes=self._min_free)
        if refusal is not None:
            raise DiskGuardRefused(refusal)
        reference = request.reference.pullable()
        yield PullUpdate(PullPhase.WAITING)
        with self._slots.slot(cancel) as acquired:
            if not acquired:
                return
            if not request.always:
                present = self._images.image_status(reference)
                if present is not None:
                    yield PullUpdate(PullPhase.SUCCEEDED, image=present, already_present=True)
                    return
            yield PullUpdate(PullPhase.PULLING, bytes_available=self._progress is not None)
            yield from self._pull_reporting(request, reference, cancel)

    def _pull_reporting(
        self, request: LocalPullRequest, reference: str, cancel: threading.Event
    ) -> Iterator[PullUpdate]:
        """Pull on a helper thread, relaying byte progress as it comes, then the final update."""
        updates: queue.Queue[PullUpdate | None] = queue.Queue()

        def report(done: int, total: int) -> None:
            updates.put(PullUpdate(PullPhase.PULLING, bytes_available=True, bytes_done=done, bytes_total=total))

        def run() -> None:
            try:
                tracking = (
                    self._progress.track(reference, report) if self._progress is not None else contextlib.nullcontext()
                )
                with tracking:
                    workers.pull_with_credentials(
                        self._images,
                        reference,
                        list(request.credentials),
                        sandbox=request.sandbox,
                        ends_at=self._clock.monotonic() + request.timeout_seconds,
                        cancel=cancel,
                        clock=self._clock,
                    )
                image = self._images.image_status(reference)
                updates.put(PullUpdate(PullPhase.SUCCEEDED, image=image))
            except cri.PullCancelled:
                pass
            except cri.RuntimeError_ as error:
                updates.put(PullUpdate(PullPhase.FAILED, message=str(error)))
            finally:
                updates.put(None)

        thread = threading.Thread(target=run, name=f"local pull {reference}", daemon=True)
        thread.start()
        while (update := updates.get()) is not None:
            yield update


def _runtime_name(text: str) -> str:
    """A bare image id (`sha256:<hex>`) as is; anything else parsed and fully qualified."""
    if text.startswith("sha256:"):
        return text
    return imageref.parse(text).pullable()
