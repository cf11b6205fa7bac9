"""Informer events → node names on the work queue (upstream §4.1 and §4.3's event handlers).

* Every NodeImage event enqueues its name: the NodeImage is what we maintain, and its changes (a puller's
  status, a scheduler's new tag) can start a timer. The exceptions are updates that hold nothing new: one to
  a version the reconciler has already decided on (`OwnWrites`: mostly the echo of its own write), and one
  that changes nothing a decision reads (`logic.triggers.nodeimage_update_matters`: a puller recording the
  spec generation it has seen).
* A Node event enqueues its name only when it can matter (`logic.triggers`); kubelet heartbeats do not.
* An ImagePullJob delete enqueues every NodeImage that names the job, found by scanning the NodeImage cache
  (memory only, once per deleted job), and tells the owner resolver the job is gone. So the job's tags leave
  within seconds, with no list of "last targeted nodes" to lose on restart: after a restart the initial list
  enqueues every NodeImage anyway, and stale owners are found then.
"""

from __future__ import annotations

from datetime import timedelta

from services.nodeimage_sync.logic import triggers
from services.nodeimage_sync.logic.lifecycle import NodeFacts
from services.nodeimage_sync.logic.spec import OwnerKey
from services.nodeimage_sync.owners import OwnerResolver
from services.nodeimage_sync.ownwrites import OwnWrites
from services.shared import clock
from services.shared.api.nodeimage import NodeImage
from services.shared.kube import informer, store, workqueue


class Triggers:
    """Builds the informer handlers that feed `queue`.

    Args:
        queue: the controller's work queue (keys: node names).
        nodeimages: the NodeImage informer's store, to see whether a Node has a NodeImage.
        owners: told about deleted jobs.
        clock: wall-clock time for the creation delay.
        creation_delay: seconds a Node must have been Ready before it gets a NodeImage.
        own_writes: versions the reconciler has already acted on; None enqueues every NodeImage update.
    """

    def __init__(
        self,
        *,
        queue: workqueue.WorkQueue[str],
        nodeimages: store.Store[NodeImage],
        owners: OwnerResolver,
        clock: clock.Clock,
        creation_delay: float,
        own_writes: OwnWrites | None = None,
    ) -> None:
        self._own_writes = own_writes
        self._queue = queue
        self._nodeimages = nodeimages
        self._owners = owners
        self._clock = clock
        self._delay = timedelta(seconds=creation_delay)

    def node_handlers(self) -> informer.Handlers[NodeFacts]:
        """Handlers for the Node informer (which stores `NodeFacts`)."""
        return informer.Handlers(
            on_add=self._node_changed,
            on_update=lambda _old, new: self._node_changed(new),
            on_delete=self._node_deleted,
        )

    def nodeimage_handlers(self) -> informer.Handlers[NodeImage]:
        """Handlers for the NodeImage informer: every event enqueues the name, except an already acted-on update."""
        return informer.Handlers(
            on_add=self._enqueue_nodeimage,
            on_update=self._nodeimage_updated,
            on_delete=self._nodeimage_deleted,
        )

    def job_handlers(self) -> informer.Handlers[OwnerKey]:
        """Handlers for the ImagePullJob informer (which stores `owners.job_identity`): only deletions matter."""
        return informer.Handlers(on_delete=self._job_deleted)

    def _node_changed(self, node: NodeFacts) -> None:
        existing = self._nodeimages.get(node.name)
        labels = None if existing is None else dict(existing.metadata.labels or {})
        delay = triggers.after_node_change(
            node=node, nodeimage_labels=labels, now=self._clock.now(), creation_delay=self._delay
        )
        if delay is not None:
            self._queue.add_after(node.name, delay)

    def _node_deleted(self, node: NodeFacts) -> None:
        if triggers.after_node_delete(node=node, has_nodeimage=self._nodeimages.get(node.name) is not None):
            self._queue.add(node.name)

    def _enqueue_nodeimage(self, nodeimage: NodeImage) -> None:
        self._queue.add(nodeimage.metadata.name)

    def _nodeimage_updated(self, old: NodeImage, new: NodeImage) -> None:
        metadata = new.metadata
        if self._own_writes is not None and self._own_writes.is_echo(metadata.name, metadata.resource_version):
            return
        if not triggers.nodeimage_update_matters(old, new):
            return
        self._enqueue_nodeimage(new)

    def _nodeimage_deleted(self, nodeimage: NodeImage) -> None:
        if self._own_writes is not None:
            self._own_writes.forget(nodeimage.metadata.name)
        self._enqueue_nodeimage(nodeimage)

    def _job_deleted(self, job: OwnerKey) -> None:
        self._owners.job_deleted(job)
        _, _, uid = job
        if not uid:
            return
        for nodeimage in self._nodeimages.list():
            if _names_owner(nodeimage, uid):
                self._queue.add(nodeimage.metadata.name)


def _names_owner(nodeimage: NodeImage, uid: str) -> bool:
    return any(
        ref.uid == uid
        for image in (nodeimage.spec.images or {}).values()
        for tag in image.tags
        for ref in tag.owner_references or ()
    )
