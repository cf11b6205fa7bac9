"""The inventory reporter against real containerd and a test-only NodeInventory that records reports.

nodeimage_sync's real NodeInventory needs its leader and informers; the reporter's protocol (snapshot first,
deltas after pulls, snapshot again on `resync_required`) is checked here against a recording stand-in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from localcluster.images import PushedImage
from services.puller import cri, inventory
from services.shared.api import imageref
from services.shared.gen.prepull.v1 import inventory_pb2, inventory_pb2_grpc
from services.shared.rpc import server
from tests.integration.puller.conftest import wait_until
from tests.support.node_fixtures import ContainerdNodes

pytestmark = pytest.mark.integration


@dataclass
class RecordingInventory(inventory_pb2_grpc.NodeInventoryServicer):
    """Accepts reports in sequence; asks for a resync once when `refuse_next_delta` is set."""

    reports: list[Any] = field(default_factory=list)
    refuse_next_delta: bool = False
    accepted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ReportImages(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.lock:
            self.reports.append(request)
            if request.HasField("delta") and (self.refuse_next_delta or request.sequence != self.accepted + 1):
                self.refuse_next_delta = False
                return inventory_pb2.ReportImagesResponse(resync_required=True, accepted_sequence=self.accepted)
            self.accepted = request.sequence
            return inventory_pb2.ReportImagesResponse(accepted_sequence=self.accepted)

    def ListNodes(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not part of this stand-in")

    def WatchNodes(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not part of this stand-in")

    def WhichNodes(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not part of this stand-in")

    def kinds(self) -> list[str]:
        with self.lock:
            return [str(report.WhichOneof("report")) for report in self.reports]


@pytest.fixture
def recording() -> Iterator[tuple[RecordingInventory, str]]:
    service = RecordingInventory()
    grpc_server, port = server.create_server(
        "127.0.0.1:0", [(inventory_pb2_grpc.add_NodeInventoryServicer_to_server, service)]
    )
    grpc_server.start()
    yield service, f"127.0.0.1:{port}"
    grpc_server.stop(0).wait()


def test_snapshot_then_deltas_then_resync(
    recording: tuple[RecordingInventory, str],
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
) -> None:
    service, address = recording
    images = cri.CriImageService(containerd_nodes.a.cri_target)
    reporter = inventory.InventoryReporter(images, grpc.insecure_channel(address), "node-a", interval=3600, settle=0.1)
    reporter.start()
    try:
        wait_until(lambda: service.kinds() == ["snapshot"], "the first snapshot")
        assert service.reports[0].node == "node-a"
        assert service.reports[0].sequence == 1

        first = unique_image()
        images.pull_image(
            imageref.parse(first.reference).pullable(), auth=None, sandbox=None, timeout=60, cancel=threading.Event()
        )
        reporter.notify()
        wait_until(lambda: service.kinds() == ["snapshot", "delta"], "a delta after the pull")
        delta = service.reports[1].delta
        assert [image.digest for image in delta.upserted] == [first.image_id]
        assert service.reports[1].sequence == 2

        service.refuse_next_delta = True
        second = unique_image()
        images.pull_image(
            imageref.parse(second.reference).pullable(), auth=None, sandbox=None, timeout=60, cancel=threading.Event()
        )
        reporter.notify()
        wait_until(lambda: service.kinds()[2:] == ["delta", "snapshot"], "a snapshot after a refused delta")
        snapshot_ids = {image.digest for image in service.reports[3].snapshot.images}
        assert {first.image_id, second.image_id} <= snapshot_ids
    finally:
        reporter.stop()
