"""Reports this node's images to nodeimage_sync's `NodeInventory` (issue 6, item 6; design §2).

One thread sends: a snapshot at start, a delta shortly after each pull (`notify`, coalesced over
`settle` seconds so a burst of pulls costs one report), and a snapshot every `interval` as a safety net.
Each report carries the next sequence number; a delta that the server cannot apply (a lost report, a new
leader) is answered with `resync_required`, and the next report is a snapshot. A failed call also makes the
next report a snapshot. The puller's token for audience `prepull.io/inventory` is attached to every call.

Tracing: `notify` is called from inside a pull's task span; the report that carries that pull is an
`inventory.report` span in the pull's trace (linked to the other pulls it carries), so nodeimage_sync's server
span for it joins the job's trace too.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import grpc
from opentelemetry import trace

from services.puller import cri, tracelinks
from services.puller.logic import inventory
from services.shared.auth import token_source
from services.shared.gen.prepull.v1 import inventory_pb2, inventory_pb2_grpc, types_pb2
from services.shared.rpc import channels
from services.shared.telemetry import attributes

__all__ = ["InventoryReporter"]

log = logging.getLogger(__name__)

CALL_TIMEOUT_SECONDS = 30.0


class InventoryReporter:
    """Sends the node's image inventory; see the module docstring.

    Args:
        images: the node's runtime.
        channel: a channel to NodeInventory (with the bearer token attached).
        node_name: this node.
        interval: seconds between snapshots.
        settle: seconds to gather pulls into one delta.
    """

    def __init__(
        self,
        images: cri.ImageService,
        channel: grpc.Channel,
        node_name: str,
        *,
        interval: float = 300.0,
        settle: float = 1.0,
    ) -> None:
        self._images = images
        self._stub: Any = inventory_pb2_grpc.NodeInventoryStub(channel)
        self._node = node_name
        self._interval = interval
        self._settle = settle
        self._sequence = 0
        self._reported: dict[str, inventory.InventoryImage] | None = None
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._traces = tracelinks.PendingTraces()
        self._tracer = trace.get_tracer(__name__)
        self.reports = 0
        """Reports the server accepted, for metrics and tests."""

    @classmethod
    def connect(
        cls, images: cri.ImageService, address: str, token_file: str, node_name: str, *, interval: float
    ) -> InventoryReporter:
        """A reporter on a new channel to `address`, presenting the token in `token_file`."""
        interceptor = token_source.BearerTokenInterceptor(token_source.FileTokenSource(token_file))
        return cls(images, channels.create_channel(address, interceptors=[interceptor]), node_name, interval=interval)

    def notify(self) -> None:
        """The node's images changed (a pull finished); a delta follows shortly, in the caller's trace if any."""
        self._traces.add_current()
        self._changed.set()

    def start(self) -> None:
        """Start the reporting thread; the first report is a snapshot."""
        self._thread = threading.Thread(target=self._run, name="inventory reporter", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the report in progress."""
        self._stopping.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def report_once(self, *, snapshot: bool) -> bool:
        """Send one report (a snapshot, or a delta if there is a previous report); True when accepted."""
        with self._traces.span(self._tracer, "inventory.report", {attributes.K8S_NODE_NAME: self._node}):
            return self._report(snapshot=snapshot)

    def _report(self, *, snapshot: bool) -> bool:
        current = inventory.index(_inventory_image(image) for image in self._images.list_images())
        sequence = self._sequence + 1
        request = inventory_pb2.ReportImagesRequest(node=self._node, sequence=sequence)
        if snapshot or self._reported is None:
            request.snapshot.CopyFrom(inventory_pb2.ImageSnapshot(images=[_message(i) for i in current.values()]))
        else:
            delta = inventory.diff(self._reported, current)
            if delta.empty:
                return True
            request.delta.CopyFrom(
                inventory_pb2.ImageDelta(
                    upserted=[_message(image) for image in delta.upserted], removed_digests=list(delta.removed)
                )
            )
        response = self._stub.ReportImages(request, timeout=CALL_TIMEOUT_SECONDS)
        self._sequence = sequence
        if response.resync_required:
            self._reported = None
            return False
        self._reported = current
        self.reports += 1
        return True

    def _run(self) -> None:
        snapshot = True
        while not self._stopping.is_set():
            try:
                accepted = self.report_once(snapshot=snapshot)
                snapshot = not accepted
            except (grpc.RpcError, cri.RuntimeError_, token_source.TokenUnavailable) as error:
                log.warning("inventory report failed: %s", _describe(error))
                snapshot = True
                self._reported = None
            changed = self._changed.wait(self._interval if not snapshot else min(self._interval, 5.0))
            if self._stopping.is_set():
                return
            if changed:
                self._changed.clear()
                self._stopping.wait(self._settle)
            else:
                snapshot = True


def _inventory_image(image: cri.RuntimeImage) -> inventory.InventoryImage:
    return inventory.InventoryImage(
        digest=image.id, repo_tags=image.repo_tags, repo_digests=image.repo_digests, size_bytes=image.size
    )


def _message(image: inventory.InventoryImage) -> Any:
    return types_pb2.Image(
        digest=image.digest,
        repo_tags=list(image.repo_tags),
        repo_digests=list(image.repo_digests),
        size_bytes=image.size_bytes,
    )


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.RpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error)
