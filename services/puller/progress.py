"""Real byte progress while CRI `PullImage` runs, read from containerd's content store (design §5).

CRI `PullImage` is one blocking call. On containerd, the same socket serves containerd's own API, and
`containerd.services.content.v1.Content/ListStatuses` (namespace `k8s.io`, the CRI plugin's) lists the layer
downloads in progress. `ContentStoreProgress` polls it every `interval` seconds while any tracked pull runs
(one poller for all pulls, none while idle) and reports each pull's bytes through its callback; the
attribution rules are in `logic.layerprogress`. Other runtimes do not serve this API: `for_runtime` returns
None for them, and pulls report phases only.

This is the one place the puller talks to containerd's own API; everything else uses CRI.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from services.puller import cri
from services.puller.logic import layerprogress
from services.shared.gen.containerd import content_pb2, content_pb2_grpc

__all__ = ["ContainerdContentStore", "ContentStore", "ContentStoreProgress", "for_runtime"]

log = logging.getLogger(__name__)

NAMESPACE_METADATA = (("containerd-namespace", "k8s.io"),)
"""The CRI plugin keeps its images and their content in containerd namespace `k8s.io`."""
LAYER_PREFIX = "layer-"
LIST_TIMEOUT_SECONDS = 5.0


class ContentStore(Protocol):
    """The downloads a runtime has in progress."""

    def list_ingests(self) -> list[layerprogress.Ingest]:
        """Layer downloads in progress now. Raises `cri.RuntimeError_` when they cannot be listed."""
        ...


class ContainerdContentStore:
    """`ContentStore` over containerd's content service on the CRI socket."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub: Any = content_pb2_grpc.ContentStub(channel)

    def list_ingests(self) -> list[layerprogress.Ingest]:
        """See `ContentStore.list_ingests`."""
        try:
            response = self._stub.ListStatuses(
                content_pb2.ListStatusesRequest(), metadata=NAMESPACE_METADATA, timeout=LIST_TIMEOUT_SECONDS
            )
        except grpc.RpcError as error:
            raise cri.RuntimeError_(f"cannot list containerd downloads: {error.code().name}") from None
        return [
            layerprogress.Ingest(digest=status.ref.removeprefix(LAYER_PREFIX), offset=status.offset, total=status.total)
            for status in response.statuses
            if status.ref.startswith(LAYER_PREFIX)
        ]


@dataclass
class _Tracked:
    report: Callable[[int, int], None]
    bytes: layerprogress.PullBytes
    reported: tuple[int, int] = (0, 0)


class ContentStoreProgress:
    """`workers.ProgressTracker` over a `ContentStore`, polled every `interval` seconds while pulls run."""

    def __init__(self, store: ContentStore, *, interval: float = 1.0) -> None:
        self._store = store
        self._interval = interval
        self._lock = threading.Lock()
        self._tracked: dict[str, _Tracked] = {}
        self._owners: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def track(self, reference: str, report: Callable[[int, int], None]) -> Iterator[None]:
        """Report the bytes of the pull of `reference` while the block runs."""
        pull_id = f"{next(self._ids)}:{reference}"
        with self._lock:
            self._tracked[pull_id] = _Tracked(report=report, bytes=layerprogress.PullBytes())
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._poll, name="content progress", daemon=True)
                self._thread.start()
            self._wake.notify_all()
        try:
            yield
        finally:
            with self._lock:
                del self._tracked[pull_id]
                self._owners = {layer: owner for layer, owner in self._owners.items() if owner != pull_id}

    def poll_once(self) -> None:
        """One listing: attribute new layers, update each pull, report changes (outside the lock)."""
        try:
            ingests = self._store.list_ingests()
        except cri.RuntimeError_ as error:
            log.debug("no byte progress this round: %s", error)
            return
        reports: list[tuple[Callable[[int, int], None], int, int]] = []
        with self._lock:
            self._owners = layerprogress.assign_new_layers(ingests, self._owners, self._tracked)
            for pull_id, tracked in self._tracked.items():
                mine = [ingest for ingest in ingests if self._owners.get(ingest.digest) == pull_id]
                tracked.bytes = layerprogress.observe(tracked.bytes, mine)
                now = (tracked.bytes.done, tracked.bytes.total)
                if now != tracked.reported and now[1] > 0:
                    tracked.reported = now
                    reports.append((tracked.report, *now))
        for report, done, total in reports:
            report(done, total)

    def _poll(self) -> None:
        while True:
            with self._lock:
                if not self._tracked:
                    self._thread = None
                    return
            self.poll_once()
            with self._lock:
                self._wake.wait(self._interval)


def for_runtime(images: cri.CriImageService, *, interval: float) -> ContentStoreProgress | None:
    """Byte progress for containerd (which serves its content API on the CRI socket); None elsewhere or off."""
    if interval <= 0:
        return None
    try:
        if images.version().runtime_name != "containerd":
            return None
    except cri.RuntimeError_:
        return None
    return ContentStoreProgress(ContainerdContentStore(images.channel), interval=interval)
