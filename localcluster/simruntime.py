"""One simulated node's container runtime called in-process, optionally journaled so its pulls survive kill -9.

Simulated nodes are hosted many per process (`localcluster.simnodes`): one gRPC server per node would cost a
completion-queue thread and a socket each, and a shared server cannot tell nodes apart. So each agent gets its
own `simcri.SimulatedRuntime` (the puller's simulated CRI: same latency, image ids and store) called directly
through `SimulatedImages`, the puller's `cri.ImageService`. Only the CRI hop is skipped; everything above that
seam is the puller's unchanged code, and errors are what `cri.CriImageService` raises for the same gRPC status.

Benchmarks run the runtime bare: no file is touched per call. Fault tests give each node a `PullJournal`, which
kill -9 of the host must not lose, as a puller restart on a real node does not lose it:

- the count of pull attempts per node and image, so a test can check exactly that no node pulled more often
  than the retries allow. Every attempt is appended to the node's *journal* (one line per event, written
  with one `write(2)` on an `O_APPEND` descriptor: the kernel keeps it even if the process dies a moment later);
- the images already pulled, as containerd keeps them on disk: a restarted agent finds them again (the
  journal is replayed into a fresh `simcri.SimulatedRuntime`).

A test can also *hold* a journaled node's pulls (a file next to the journal): a pull that starts while the file
exists waits until it is removed, or until the pull is cancelled or times out. That turns "the job is still
running when X happens" from a timing guess into a fact the test arranges.

Two more files inject the runtime-side faults of a real node, each in force exactly while the file exists:

- *fail* (`<node>.fail`, or `all_nodes.fail` for every node of the directory): the registry is down. A pull
  that starts (after any hold) fails at once, as containerd fails when resolving the reference answers 503
  (an UNKNOWN status, `failed to resolve reference ...: unexpected status ... 503 Service Unavailable`), and
  is journaled as a failed attempt. A pull already past resolving finishes.
- *down* (`<node>.down`): the node's containerd is stopped. Every call fails UNAVAILABLE (`connection
  refused`), a pull in flight included: it ends UNAVAILABLE and is journaled as failed. A call refused this way
  never reached the runtime, so it is not journaled. Removing the file is the restart: the images pulled before
  are still there (they are on disk), the pull that was cut off is not.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc

from services.puller import cri
from services.puller.simcri import SimulatedRuntime, SimulationSettings
from services.shared.api.pulloptions import SandboxConfig
from services.shared.gen.cri import api_pb2

__all__ = [
    "ALL_NODES_FAIL",
    "HELD_POLL_SECONDS",
    "UNJOURNALED",
    "JournaledImages",
    "NodeJournal",
    "PullJournal",
    "SimulatedImages",
]

HELD_POLL_SECONDS = 0.05
STARTED, PULLED, FAILED, CANCELLED = "start", "pulled", "failed", "cancelled"
ALL_NODES_FAIL = "all_nodes.fail"
"""The fail file of every node of a journal directory (a Node name cannot contain `_`, so no node owns it)."""
RUNTIME_SOCKET = "unix:///run/containerd/containerd.sock"
"""Where a real node's puller would dial containerd; named in the errors of a node whose runtime is down."""


class NodeJournal(Protocol):
    """What `SimulatedImages` asks of a node's journal: record a pull event, and which faults are in force."""

    def record(self, event: str, reference: str) -> None: ...

    def held(self) -> bool: ...

    def registry_failing(self) -> bool: ...

    def runtime_down(self) -> bool: ...


class _Unjournaled:
    """The journal of a node nobody audits: records nothing and injects no fault, so a pull does no I/O."""

    def record(self, event: str, reference: str) -> None:
        """Nothing to keep."""

    def held(self) -> bool:
        return False

    def registry_failing(self) -> bool:
        return False

    def runtime_down(self) -> bool:
        return False


UNJOURNALED: NodeJournal = _Unjournaled()


@dataclass(frozen=True)
class PullJournal:
    """The files of one node under a journal directory: `<node>.pulls` (events), `<node>.hold` (the hold),
    `<node>.fail` and `all_nodes.fail` (registry down), `<node>.down` (containerd stopped)."""

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

    @property
    def fail_path(self) -> Path:
        return self.directory / f"{self.node}.fail"

    @property
    def all_nodes_fail_path(self) -> Path:
        return self.directory / ALL_NODES_FAIL

    @property
    def down_path(self) -> Path:
        return self.directory / f"{self.node}.down"

    def failures(self) -> Counter[str]:
        """Failed attempts per reference (registry errors, timeouts, pulls cut off by the runtime stopping)."""
        return Counter(reference for event, reference in self.events() if event == FAILED)

    def registry_failing(self) -> bool:
        """True while this node's fail file, or the one of every node, exists: pulls fail as on a 503."""
        return self.fail_path.exists() or self.all_nodes_fail_path.exists()

    def runtime_down(self) -> bool:
        """True while this node's down file exists: every runtime call fails UNAVAILABLE."""
        return self.down_path.exists()


class _RestorableRuntime(SimulatedRuntime):
    """`SimulatedRuntime` whose store can be refilled with images pulled before the process started."""

    def restore(self, reference: str) -> None:
        self._store(reference)


class _AbortedError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _Call:
    """What `SimulatedRuntime` asks of a gRPC call context: is the caller still waiting, and abort.

    `severed` says whether the connection is gone (the runtime stopped): a call then ends as the caller's would.
    """

    def __init__(
        self,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
        severed: Callable[[], bool] = lambda: False,
    ) -> None:
        self._cancel = cancel or threading.Event()
        self._deadline = deadline
        self._severed = severed

    def is_active(self) -> bool:
        expired = self._deadline is not None and time.monotonic() >= self._deadline
        return not (self._cancel.is_set() or expired or self._severed())

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _AbortedError(code, details)


class SimulatedImages:
    """`cri.ImageService` of one simulated node: its `SimulatedRuntime` called directly, each pull `journal`ed."""

    def __init__(self, runtime: SimulatedRuntime, journal: NodeJournal = UNJOURNALED) -> None:
        self.runtime = runtime
        self._journal = journal

    def pull_image(
        self,
        reference: str,
        *,
        auth: cri.Auth | None,
        sandbox: SandboxConfig | None,
        timeout: float,
        cancel: threading.Event,
    ) -> str:
        """See `cri.ImageService.pull_image`: waits out a hold, then the runtime's latency; journals the outcome.

        Fails as the module docstring says while the node's runtime is down or its registry fails.
        """
        self._refuse_while_down()
        self._journal.record(STARTED, reference)
        deadline = time.monotonic() + timeout
        call = _Call(cancel, deadline, severed=self._journal.runtime_down)
        while self._journal.held() and call.is_active():
            time.sleep(HELD_POLL_SECONDS)
        try:
            if not call.is_active():
                raise self._interrupted(reference, cancel)
            if self._journal.registry_failing():
                call.abort(grpc.StatusCode.UNKNOWN, _registry_outage(reference))
            if time.monotonic() + self.runtime.settings.pull_latency > deadline:
                self._journal.record(FAILED, reference)
                raise cri.PullFailed(f"pulling image {reference} timed out")
            response = self.runtime.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=reference)), call)
            if not call.is_active():
                raise self._interrupted(reference, cancel)
        except _AbortedError as error:
            self._journal.record(FAILED, reference)
            raise _pull_error(reference, error) from None
        self._journal.record(PULLED, reference)
        return str(response.image_ref)

    def _interrupted(self, reference: str, cancel: threading.Event) -> cri.RuntimeError_:
        """The error for a pull its caller gave up on (cancelled), whose runtime stopped, or that timed out."""
        if cancel.is_set():
            self._journal.record(CANCELLED, reference)
            return cri.PullCancelled(f"pulling image {reference} is canceled")
        self._journal.record(FAILED, reference)
        if self._journal.runtime_down():
            return _pull_error(reference, _AbortedError(grpc.StatusCode.UNAVAILABLE, _CONNECTION_REFUSED))
        return cri.PullFailed(f"pulling image {reference} timed out")

    def _refuse_while_down(self) -> None:
        """Raise what a CRI call to a stopped containerd raises (the call never reaches the runtime)."""
        if self._journal.runtime_down():
            raise cri.RuntimeUnavailable(f"container runtime at {RUNTIME_SOCKET} unavailable: {_CONNECTION_REFUSED}")

    def image_status(self, reference: str) -> cri.RuntimeImage | None:
        """See `cri.ImageService.image_status`."""
        self._refuse_while_down()
        response = self.runtime.ImageStatus(
            api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=reference)), _Call()
        )
        return cri.runtime_image(response.image) if response.HasField("image") and response.image.id else None

    def list_images(self) -> list[cri.RuntimeImage]:
        """See `cri.ImageService.list_images`."""
        self._refuse_while_down()
        response = self.runtime.ListImages(api_pb2.ListImagesRequest(), _Call())
        return [cri.runtime_image(image) for image in response.images]

    def image_fs_info(self) -> list[cri.FilesystemUsage]:
        """See `cri.ImageService.image_fs_info`."""
        self._refuse_while_down()
        response: Any = self.runtime.ImageFsInfo(api_pb2.ImageFsInfoRequest(), _Call())
        return [
            cri.FilesystemUsage(mountpoint=usage.fs_id.mountpoint, used_bytes=int(usage.used_bytes.value))
            for usage in response.image_filesystems
        ]

    def version(self) -> cri.RuntimeVersion:
        """See `cri.ImageService.version`."""
        self._refuse_while_down()
        response = self.runtime.Version(api_pb2.VersionRequest(version="v1"), _Call())
        return cri.RuntimeVersion(
            runtime_name=response.runtime_name,
            runtime_version=response.runtime_version,
            runtime_api_version=response.runtime_api_version,
        )


class JournaledImages(SimulatedImages):
    """`SimulatedImages` over a `PullJournal`, holding from the start every image the journal says was pulled."""

    def __init__(self, journal: PullJournal, settings: SimulationSettings) -> None:
        runtime = _RestorableRuntime(settings)
        for reference in journal.pulled():
            runtime.restore(reference)
        super().__init__(runtime, journal)
        self.journal = journal


_CONNECTION_REFUSED = (
    "failed to connect to all addresses; last error: UNAVAILABLE: "
    "unix:/run/containerd/containerd.sock: Connection refused"
)
"""grpc's details for a call to a containerd that is not listening."""


def _registry_outage(reference: str) -> str:
    """containerd's message when resolving `reference` meets a registry answering 503."""
    host, _, rest = reference.partition("/")
    repository, _, tag = rest.rpartition(":")
    return (
        f'failed to pull and unpack image "{reference}": failed to resolve reference "{reference}": unexpected '
        f"status from HEAD request to https://{host}/v2/{repository}/manifests/{tag}: 503 Service Unavailable"
    )


def _pull_error(reference: str, error: _AbortedError) -> cri.RuntimeError_:
    """What `cri.CriImageService.pull_image` raises for a PullImage that ended with this status over gRPC."""
    return cri.pull_error(reference, error.code, error.details, timeout=0.0)
