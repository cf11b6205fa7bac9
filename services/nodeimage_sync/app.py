"""Composition root of nodeimage_sync: settings in, a running service out.

What runs, and when:

* From the start, on every replica: the informers (Nodes, NodeImages, ImagePullJobs; a standby keeps warm
  caches so a failover starts at once), the event handlers that fill the work queue, the HTTP server
  (`/metrics`, `/healthz`, `/readyz`), and the gRPC server reporting NOT_SERVING. The caches keep compact
  forms, not the apiserver's dicts: of a Node the `NodeFacts` decisions read (a Node's dict lists every image
  it holds); a NodeImage as the typed `NodeImage` (several times smaller than its dict; with every NodeImage
  cached, that is most of this service's memory); of a job its identity (namespace, name, UID), all we read.
* Once this replica leads (Lease, design §2) and every informer has synced: the reconcile workers, and
  readiness (gRPC health SERVING, `/readyz` 200), so the Service routes NodeInventory calls to the leader,
  which holds the inventory. Workers never start on a partial cache: a NodeImage whose Node is not cached yet
  would look orphaned, and a job not cached yet would look deleted.
* When leadership is lost: readiness goes, workers stop, every watch stream ends, and `run()` returns so the
  process exits and restarts as a clean standby (queue and inventory are rebuilt, never half-trusted).
* On SIGTERM: NOT_SERVING, calls in flight get `--shutdown-grace`, then everything stops and the Lease is
  released, so the next leader takes over at once.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
from collections.abc import Sequence
from types import FrameType

import grpc
from prometheus_client import CollectorRegistry

from services.nodeimage_sync import nodewatch, servicer
from services.nodeimage_sync.inventory import InventoryStore
from services.nodeimage_sync.logic.lifecycle import NodeFacts
from services.nodeimage_sync.metrics import Metrics, QueueMetricsAdapter
from services.nodeimage_sync.owners import OwnerResolver, job_identity
from services.nodeimage_sync.ownwrites import OwnWrites
from services.nodeimage_sync.queries import NodeQueries
from services.nodeimage_sync.reconciler import NodeImageReconciler, Timing
from services.nodeimage_sync.settings import PROG, Settings
from services.nodeimage_sync.triggering import Triggers
from services.shared import clock as shared_clock
from services.shared import leadership, observability
from services.shared.api import constants
from services.shared.api.nodeimage import NodeImage
from services.shared.auth import interceptor as auth_interceptor
from services.shared.auth import subjectaccess, tokenreview
from services.shared.gen.prepull.v1 import inventory_pb2_grpc
from services.shared.kube import (
    client,
    controller,
    events,
    informer,
    kubeapi,
    leaderelection,
    resources,
    workqueue,
)
from services.shared.rpc import health, status
from services.shared.rpc import server as rpc_server
from services.shared.telemetry import instrumentation

log = logging.getLogger(__name__)

EVENT_COMPONENT = "prepull.io/nodeimage-sync"
SYNC_POLL_SECONDS = 0.5


class App:
    """The whole service; `start()`, then `wait()` (or `run()`), then `stop()`.

    Args:
        settings: parsed flags.
        api_client: the Kubernetes client; built from `settings.common.kubeconfig` when None (tests pass one).
        clock: wall-clock and monotonic time; the system clock when None.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        api_client: client.ApiClient | None = None,
        clock: shared_clock.Clock | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock or shared_clock.SystemClock()
        self._owns_client = api_client is None
        self._api_client = api_client or client.from_kubeconfig(
            settings.common.kubeconfig, settings=client.ClientSettings(user_agent=PROG)
        )
        self.api = kubeapi.KubeApi(self._api_client)
        self.metrics = Metrics(CollectorRegistry(auto_describe=True))
        self._build_caches()
        self._build_controller()
        self._build_inventory()
        self._build_servers()
        self._elector = self._build_elector()
        self._leading = threading.Event()
        self.stopped = threading.Event()
        """Set when the service must end: stop() was called, or leadership was lost."""
        self._stop_lock = threading.Lock()
        self._shut_down = False

    # --- construction --------------------------------------------------------------------------------------

    def _build_caches(self) -> None:
        selector = self.settings.node_selector or None
        self.nodes = informer.Informer(
            self.api, resources.NODES, label_selector=selector, transform=NodeFacts.from_node
        )
        self.nodeimages = informer.Informer(
            self.api,
            resources.NODE_IMAGES,
            label_selector=selector,
            transform=NodeImage.from_dict,
            page_size=constants.NODE_IMAGE_LIST_PAGE_SIZE,
        )
        self.jobs = informer.Informer(self.api, resources.IMAGE_PULL_JOBS, transform=job_identity)
        self.owners = OwnerResolver(self.api, self.jobs.store)

    def _build_controller(self) -> None:
        settings = self.settings
        self.queue: workqueue.WorkQueue[str] = workqueue.WorkQueue(metrics=QueueMetricsAdapter(self.metrics))
        self.events = events.EventRecorder(
            self.api, component=EVENT_COMPONENT, instance=settings.leader_election.identity
        )
        self.reconciler = NodeImageReconciler(
            api=self.api,
            nodes=self.nodes.store,
            nodeimages=self.nodeimages.store,
            owners=self.owners,
            events=self.events,
            metrics=self.metrics,
            timing=Timing(
                creation_delay=settings.creation_delay,
                response_timeout=settings.response_timeout,
                min_requeue=settings.min_requeue,
                requeue_jitter=settings.requeue_jitter,
            ),
            clock=self._clock,
            rng=random.Random(),
            own_writes=OwnWrites(in_flight_wait=settings.own_write_wait),
        )
        self._workers: list[threading.Thread] = []
        triggers = Triggers(
            queue=self.queue,
            nodeimages=self.nodeimages.store,
            owners=self.owners,
            clock=self._clock,
            creation_delay=settings.creation_delay,
            own_writes=self.reconciler.own_writes,
        )
        self.nodes.add_handlers(triggers.node_handlers())
        self.nodeimages.add_handlers(triggers.nodeimage_handlers())
        self.jobs.add_handlers(triggers.job_handlers())

    def _build_inventory(self) -> None:
        self.hub = nodewatch.NodeWatchHub()
        self.inventory = InventoryStore(
            max_images=self.settings.inventory_max_images,
            max_names=self.settings.inventory_max_names,
            clock=self._clock,
            on_change=self._inventory_changed,
        )
        self.queries = NodeQueries(nodeimages=self.nodeimages.store, inventory=self.inventory)
        self.nodeimages.add_handlers(
            informer.Handlers(
                on_add=lambda nodeimage: self.hub.notify(nodeimage.metadata.name),
                on_update=lambda _old, new: self.hub.notify(new.metadata.name),
                on_delete=self._nodeimage_deleted,
            )
        )

    def _build_servers(self) -> None:
        settings = self.settings
        self.health = health.Health()
        interceptors: list[grpc.ServerInterceptor] = [instrumentation.server_interceptor()]
        if settings.auth:
            interceptors.append(
                auth_interceptor.AuthInterceptor(
                    servicer.policies(settings.puller_service_account),
                    authenticator=tokenreview.TokenReviewAuthenticator(self._api_client),
                    reviewer=subjectaccess.SubjectAccessReviewer(self._api_client),
                )
            )
        interceptors.append(status.StatusInterceptor(servicer.STATUS_TABLE))
        inventory_servicer = servicer.NodeInventoryServicer(
            self.queries, self.hub, authenticated=settings.auth, leading=self.ready
        )
        self.grpc_server, self.grpc_port = rpc_server.create_server(
            settings.common.grpc_address,
            [(inventory_pb2_grpc.add_NodeInventoryServicer_to_server, inventory_servicer)],
            health=self.health,
            serving=False,
            interceptors=interceptors,
        )
        self.http = observability.ObservabilityServer(
            metrics_address=settings.common.metrics_address,
            health_address=settings.common.health_address,
            readiness=self.ready,
            registry=self.metrics.registry,
        )

    def _build_elector(self) -> leaderelection.LeaderElector | None:
        return leadership.build_elector(
            self.api,
            self.settings.leader_election,
            on_started_leading=self._started_leading,
            on_stopped_leading=self._stopped_leading,
        )

    # --- life cycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything that runs on every replica, and campaign for leadership."""
        self.events.start()
        for each in (self.nodes, self.nodeimages, self.jobs):
            each.start()
        self.http.start()
        self.grpc_server.start()
        log.info("%s started: gRPC on port %d", PROG, self.grpc_port)
        if self._elector is None:
            self._started_leading()
        else:
            self._elector.start()

    def ready(self) -> bool:
        """Readiness: leading, caches synced, workers running."""
        return self._leading.is_set() and not self.stopped.is_set()

    def is_leader(self) -> bool:
        """Whether this replica currently leads (and has started its workers)."""
        return self._leading.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the service must end (stop() or leadership lost); True if it must."""
        return self.stopped.wait(timeout)

    def stop(self) -> None:
        """Stop everything, releasing the Lease; safe to call twice."""
        with self._stop_lock:
            if self._shut_down:
                return
            self._shut_down = True
            self.stopped.set()
            self.health.enter_graceful_shutdown()
            self.hub.close()
            self.grpc_server.stop(self.settings.shutdown_grace).wait()
            if self._elector is not None:
                self._elector.stop()
            self.queue.shutdown()
            for worker in self._workers:
                worker.join(10.0)
            for each in (self.nodes, self.nodeimages, self.jobs):
                each.stop()
            self.events.stop()
            self.http.stop()
            if self._owns_client:
                self._api_client.close()

    def run(self, *, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> int:
        """Start, serve until a signal or lost leadership, stop; the process exit status (0 on a signal)."""
        received: list[int] = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            received.append(signum)
            self.stopped.set()

        previous = {each: signal.signal(each, on_signal) for each in signals}
        try:
            self.start()
            while not self.stopped.wait(1.0):
                pass
        finally:
            self.stop()
            for each, handler in previous.items():
                signal.signal(each, handler)
        return 0 if received else 1

    # --- leadership ------------------------------------------------------------------------------------

    def _started_leading(self) -> None:
        threading.Thread(target=self._lead, name="nodeimage-sync-lead", daemon=True).start()

    def _lead(self) -> None:
        informers = (self.nodes, self.nodeimages, self.jobs)
        while not all(each.wait_for_sync(SYNC_POLL_SECONDS) for each in informers):
            if self.stopped.is_set() or (self._elector is not None and not self._elector.is_leader()):
                return
        if self.stopped.is_set():
            return
        # `controller.Controller(queue=...)` would drop an empty queue (`queue or WorkQueue()`, and an empty
        # queue is falsy), so the workers are started on our queue directly.
        self._workers = controller.run_workers(
            self.queue, self.reconciler.reconcile, self.settings.workers, name="nodeimage"
        )
        self._leading.set()
        self.metrics.leader.set(1)
        self.health.set_serving(True)
        log.info("leading: %d NodeImages cached, workers started", len(self.nodeimages.store))

    def _stopped_leading(self) -> None:
        if self.stopped.is_set():
            return
        log.warning("lost leadership; stopping so that a fresh standby takes over")
        self._leading.clear()
        self.queue.shutdown()  # workers finish their current reconcile and exit: no writes without the Lease
        self.metrics.leader.set(0)
        self.health.set_serving(False)
        self.hub.close()
        self.inventory.clear()
        self.stopped.set()

    # --- inventory bookkeeping ---------------------------------------------------------------------------

    def _inventory_changed(self, name: str) -> None:
        totals = self.inventory.totals()
        self.metrics.inventory_nodes.set(totals.nodes)
        self.metrics.inventory_images.set(totals.images)
        self.metrics.inventory_bytes.set(totals.memory_bytes)
        self.hub.notify(name)

    def _nodeimage_deleted(self, nodeimage: NodeImage) -> None:
        name = nodeimage.metadata.name
        self.inventory.forget(name)
        self.hub.notify(name)
