"""Composition root of the puller: builds the parts from `PullerSettings` and starts and stops them in order.

    informer (this node's NodeImage only) ─▶ controller (1 worker) ─▶ Reconciler ─▶ Workers ─▶ CRI
                                                                         │              │
                                                                         ▼              ▼
                                                                    StatusWriter ◀── StatusBook

The seams (`ObjectApi`, `cri.ImageService`, `CredentialsSource`) are passed in, so tests run the real
puller against the real apiserver and containerd and may wrap a seam to count calls, and `__main__` wires
the production adapters.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from prometheus_client import CollectorRegistry

from services.puller import cri, localpull, metrics, pullevents, reconciler, statusbook, statuswriter, workers
from services.puller.credentials_client import AnonymousCredentials, CredentialsSource
from services.puller.logic import backoff
from services.puller.settings import PullerSettings
from services.shared.clock import Clock, SystemClock
from services.shared.kube import controller, events, informer, objects, resources

__all__ = ["PullerApp"]

log = logging.getLogger(__name__)

EVENT_COMPONENT = "prepull.io/puller"


class PullerApp:
    """The running puller of one node.

    Args:
        settings: the parsed flags.
        api: the apiserver.
        images: the node's runtime.
        credentials: where registry credentials come from; anonymous pulls when None.
        progress: byte progress of pulls in flight; phases only when None.
        clock: time source.
        informer_settings: watch timing (tests shorten nothing here; the defaults are client-go's).
        on_pulled: called after each pull that changed the node's images (the inventory reporter).
        tracer_provider: where task spans go; the process-wide provider when None.
    """

    def __init__(
        self,
        settings: PullerSettings,
        *,
        api: objects.ObjectApi,
        images: cri.ImageService,
        credentials: CredentialsSource | None = None,
        progress: workers.ProgressTracker | None = None,
        clock: Clock | None = None,
        informer_settings: informer.InformerSettings | None = None,
        on_pulled: Callable[[], None] = lambda: None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.settings = settings
        self.api = api
        self.images = images
        node = settings.node_name
        self.clock = clock or SystemClock()
        self.informer = informer.Informer(
            api, resources.NODE_IMAGES, field_selector=f"metadata.name={node}", settings=informer_settings
        )
        self.metrics = metrics.PullerMetrics(CollectorRegistry())
        self.book = statusbook.StatusBook(on_change=self._book_changed)
        self.writer = statuswriter.StatusWriter(
            api,
            node,
            self.book,
            settings=statuswriter.WriterSettings(
                qps=settings.status_write_qps,
                burst=settings.status_write_burst,
                coalesce=settings.status_write_coalesce,
            ),
            clock=self.clock,
            on_write=self.metrics.status_writes.inc,
            on_error=self.metrics.api_error,
            cached=self._node_image,
        )
        self.events = events.EventRecorder(api, component=EVENT_COMPONENT, host=node)
        self.slots = workers.PullSlots(settings.workers)
        self.workers = workers.Workers(
            workers.WorkerDeps(
                images=images,
                slots=self.slots,
                credentials=credentials or AnonymousCredentials(),
                events=pullevents.Fanout(pullevents.RecorderEvents(self.events, self._node_image, node), self.metrics),
                measurements=self.metrics,
                clock=self.clock,
                retry=backoff.RetryPolicy(initial=settings.backoff_initial, cap=settings.backoff_max),
                min_free_disk_bytes=settings.min_free_disk_bytes,
                progress=progress,
                on_pulled=on_pulled,
                node_name=node,
                tracer=trace.get_tracer(__name__, tracer_provider=tracer_provider),
            ),
            self.book,
        )
        self.metrics.watch(in_flight=lambda: self.slots.in_flight, slots=self.slots.limit, workers=self.workers.running)
        self.local = localpull.LocalPulls(
            images, self.slots, min_free_disk_bytes=settings.min_free_disk_bytes, progress=progress, clock=self.clock
        )
        self.reconciler = reconciler.Reconciler(
            node_name=node,
            cache=self.informer.store,
            pool=self.workers,
            book=self.book,
            writer=self.writer,
            requeue_pulling=(settings.resync_pulling, settings.resync_jitter_pulling),
            requeue_idle=(settings.resync_idle, settings.resync_jitter_idle),
            rng=random.Random(),
        )
        self.controller: controller.Controller[str] = controller.Controller(
            f"puller {node}", self._reconcile, workers=1
        )
        self.informer.add_handlers(
            informer.Handlers(on_add=self._enqueue, on_update=self._updated, on_delete=self._enqueue)
        )

    def start(self, *, sync_timeout: float = 60.0) -> None:
        """Start watching and pulling; returns once the NodeImage cache has synced (or `sync_timeout` passed)."""
        self.events.start()
        self.writer.start()
        self.informer.start()
        if not self.informer.wait_for_sync(sync_timeout):
            log.warning("NodeImage %s not listed after %.0fs; continuing", self.settings.node_name, sync_timeout)
        self.controller.start()
        log.info("puller for node %s started (%d pull workers)", self.settings.node_name, self.settings.workers)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop everything: no new syncs, cancel pulls, stop writing. Unfinished tags are resumed at next start."""
        self.controller.stop(timeout)
        self.informer.stop(timeout)
        self.workers.stop_all(timeout)
        self.writer.stop(timeout)
        self.events.stop(timeout=2.0)

    def ready(self) -> bool:
        """Readiness: the NodeImage cache has synced."""
        return self.informer.has_synced()

    def _reconcile(self, key: str) -> controller.Result:
        self.metrics.reconciles.inc()
        return self.reconciler.reconcile(key)

    def _book_changed(self) -> None:
        self.writer.mark_dirty()

    def _node_image(self) -> dict[str, Any] | None:
        return self.informer.store.get(self.settings.node_name)

    def _enqueue(self, obj: dict[str, Any]) -> None:
        self.controller.queue.add(self.settings.node_name)

    def _updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if reconciler.should_enqueue(old, new, self.writer.last_written):
            self.controller.queue.add(self.settings.node_name)
