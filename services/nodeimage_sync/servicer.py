"""`NodeInventory` over gRPC: a thin adapter between `prepull.v1` messages and `queries.NodeQueries`.

Each method converts the request, calls one application function and converts the result; errors are left
to `rpc.status.StatusInterceptor` (with `STATUS_TABLE` for this service's own errors). Who may call what is
decided by the auth interceptor (`POLICIES`); the one check that needs the request, "a puller reports only
its own node", is made by `NodeQueries.report` with the node taken from the caller's token.

Tracing: the server span comes from the tracing interceptor; inside it, queries are `inventory.query` spans and
reports `inventory.update` spans (with the node), so a puller's report after a pull shows in the job's trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
from google.protobuf import timestamp_pb2
from opentelemetry import trace

from services.nodeimage_sync import nodewatch
from services.nodeimage_sync.inventory import InventoryLimitExceeded, NodeInventory
from services.nodeimage_sync.logic import labelselector, presence
from services.nodeimage_sync.queries import InvalidPageToken, NodeQueries, NodeSelection, NodeView
from services.shared.api import constants
from services.shared.auth import caller as auth_caller
from services.shared.auth import policy
from services.shared.auth.subjectaccess import ResourceAccess
from services.shared.gen.prepull.v1 import inventory_pb2, inventory_pb2_grpc, types_pb2
from services.shared.rpc import status
from services.shared.telemetry import attributes

SERVICE = "prepull.v1.NodeInventory"

tracer = trace.get_tracer(__name__)


class NotLeading(Exception):  # noqa: N818 -- reads as the condition; mapped to UNAVAILABLE (clients retry)
    """This replica does not lead, so it holds no inventory; the Service should not have routed here."""


STATUS_TABLE = status.DEFAULT_TABLE.extended(
    {
        NotLeading: grpc.StatusCode.UNAVAILABLE,
        labelselector.InvalidSelector: grpc.StatusCode.INVALID_ARGUMENT,
        InvalidPageToken: grpc.StatusCode.INVALID_ARGUMENT,
        InventoryLimitExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

_EVENT_TYPES = {
    nodewatch.WatchEventType.ADDED: inventory_pb2.NodeEvent.ADDED,
    nodewatch.WatchEventType.MODIFIED: inventory_pb2.NodeEvent.MODIFIED,
    nodewatch.WatchEventType.DELETED: inventory_pb2.NodeEvent.DELETED,
    nodewatch.WatchEventType.SYNCED: inventory_pb2.NodeEvent.SYNCED,
}


def policies(puller_service_account: str) -> policy.PolicyTable:
    """Design §2: pullers report (their own node, checked per request); readers need RBAC on nodeimages."""

    def read(verb: str) -> policy.MethodPolicy:
        access = ResourceAccess(verb=verb, resource=constants.PLURAL_NODE_IMAGES, group=constants.GROUP)
        return policy.MethodPolicy(audience=constants.AUDIENCE_INVENTORY, access=access)

    return policy.PolicyTable(
        {
            f"/{SERVICE}/ReportImages": policy.MethodPolicy(
                audience=constants.AUDIENCE_INVENTORY,
                usernames=frozenset({puller_service_account}),
                require_node_binding=True,
            ),
            f"/{SERVICE}/ListNodes": read("list"),
            f"/{SERVICE}/WatchNodes": read("watch"),
            f"/{SERVICE}/WhichNodes": read("get"),
        }
    )


class NodeInventoryServicer(inventory_pb2_grpc.NodeInventoryServicer):
    """The `prepull.v1.NodeInventory` service.

    Args:
        queries: the application functions.
        hub: change notifications for watches.
        authenticated: whether calls carry an authenticated caller (the auth interceptor is installed).
        leading: whether this replica leads; a standby refuses calls with UNAVAILABLE instead of answering
            "unknown" for every node from its empty inventory.
    """

    def __init__(
        self,
        queries: NodeQueries,
        hub: nodewatch.NodeWatchHub,
        *,
        authenticated: bool,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self._queries = queries
        self._hub = hub
        self._authenticated = authenticated
        self._leading = leading

    def _require_leading(self) -> None:
        if not self._leading():
            raise NotLeading("this replica is not the leader; retry (the Service routes to the leader)")

    def ListNodes(  # noqa: N802 -- generated interface
        self, request: inventory_pb2.ListNodesRequest, context: grpc.ServicerContext
    ) -> inventory_pb2.ListNodesResponse:
        """See `inventory.proto`."""
        self._require_leading()
        with tracer.start_as_current_span("inventory.query"):
            views, token = self._queries.page(
                _selection(request.selector), page_size=request.page_size, page_token=request.page_token
            )
        return inventory_pb2.ListNodesResponse(nodes=[_node(view) for view in views], next_page_token=token)

    def WatchNodes(  # noqa: N802 -- generated interface
        self, request: inventory_pb2.WatchNodesRequest, context: grpc.ServicerContext
    ) -> Iterator[inventory_pb2.NodeEvent]:
        """See `inventory.proto`."""
        self._require_leading()
        selection = _selection(request.selector)
        active: Callable[[], bool] = context.is_active
        events = nodewatch.stream(
            self._hub,
            lookup=self._queries.view,
            initial=lambda: self._queries.select(selection),
            selection=selection,
            active=active,
        )
        for event_type, view in events:
            node = _node(view) if view is not None else None
            yield inventory_pb2.NodeEvent(type=_EVENT_TYPES[event_type], node=node)

    def ReportImages(  # noqa: N802 -- generated interface
        self, request: inventory_pb2.ReportImagesRequest, context: grpc.ServicerContext
    ) -> inventory_pb2.ReportImagesResponse:
        """See `inventory.proto`."""
        self._require_leading()
        caller_node = (auth_caller.current_caller().node_name or "") if self._authenticated else None
        which = request.WhichOneof("report")
        with tracer.start_as_current_span("inventory.update", attributes={attributes.K8S_NODE_NAME: request.node}):
            if which == "delta":
                outcome = self._queries.report(
                    caller_node=caller_node,
                    node=request.node,
                    sequence=request.sequence,
                    upserted=[_image(image) for image in request.delta.upserted],
                    removed_digests=list(request.delta.removed_digests),
                )
            else:
                outcome = self._queries.report(
                    caller_node=caller_node,
                    node=request.node,
                    sequence=request.sequence,
                    snapshot=[_image(image) for image in request.snapshot.images],
                )
        return inventory_pb2.ReportImagesResponse(
            resync_required=not outcome.applied, accepted_sequence=outcome.accepted_sequence
        )

    def WhichNodes(  # noqa: N802 -- generated interface
        self, request: inventory_pb2.WhichNodesRequest, context: grpc.ServicerContext
    ) -> inventory_pb2.WhichNodesResponse:
        """See `inventory.proto`."""
        self._require_leading()
        with tracer.start_as_current_span(
            "inventory.query", attributes={attributes.CONTAINER_IMAGE_NAME: request.image}
        ):
            answer = self._queries.which_nodes(request.image, _selection(request.selector))
        present = [
            inventory_pb2.NodeImagePresence(
                node=view.name, image=_image_message(image), reported_at=_reported_at(view.inventory)
            )
            for view, image in answer.present
        ]
        return inventory_pb2.WhichNodesResponse(
            present=present, absent=answer.absent, unknown=answer.unknown, normalized_image=answer.normalized
        )


def _selection(selector: inventory_pb2.NodeSelector) -> NodeSelection:
    which = selector.WhichOneof("selector")
    if which == "label_selector":
        return NodeSelection(selector=labelselector.parse(selector.label_selector))
    if which == "names":
        return NodeSelection(names=tuple(selector.names.names))
    return NodeSelection()


def _node(view: NodeView) -> inventory_pb2.Node:
    inventory = view.inventory
    return inventory_pb2.Node(
        name=view.name,
        labels=dict(view.labels),
        image_count=len(inventory.images) if inventory else 0,
        image_bytes=inventory.image_bytes if inventory else 0,
        reported_at=_reported_at(inventory),
    )


def _reported_at(inventory: NodeInventory | None) -> timestamp_pb2.Timestamp | None:
    if inventory is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(inventory.reported_at)
    return stamp


def _image(message: types_pb2.Image) -> presence.InventoryImage:
    return presence.InventoryImage(
        digest=message.digest,
        repo_tags=tuple(message.repo_tags),
        repo_digests=tuple(message.repo_digests),
        size_bytes=message.size_bytes,
    )


def _image_message(image: presence.InventoryImage) -> types_pb2.Image:
    return types_pb2.Image(
        digest=image.digest,
        repo_tags=image.repo_tags,
        repo_digests=image.repo_digests,
        size_bytes=image.size_bytes,
    )
