"""The puller's sync (upstream-behaviour.md §5.2): observe the NodeImage → plan → apply to the workers.

The informer watches one object, this node's NodeImage (field selector `metadata.name=<node>`), and the
single-threaded controller calls `reconcile` with its name whenever the spec changes, whenever someone else
changes the status (nodeimage_sync failing a tag on a timeout), and periodically (3 to 5 s while pulls are
unfinished, 20 to 30 min otherwise, upstream's requeues). Reconcile reads the cached object only; the status
writer does the one API write. A NodeImage that is deleted stops every worker.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

from services.puller import statusbook, statuswriter, workers
from services.puller.logic import plan
from services.shared.api import nodeimage, wire
from services.shared.kube import controller, store

__all__ = ["Reconciler", "should_enqueue"]

log = logging.getLogger(__name__)


class Reconciler:
    """Keeps the workers in line with the NodeImage `node_name` as the informer's store holds it."""

    def __init__(
        self,
        *,
        node_name: str,
        cache: store.Store[store.RawObject],
        pool: workers.Workers,
        book: statusbook.StatusBook,
        writer: statuswriter.StatusWriter,
        requeue_pulling: tuple[float, float] = (3.0, 2.0),
        requeue_idle: tuple[float, float] = (1200.0, 600.0),
        rng: random.Random | None = None,
    ) -> None:
        self._node_name = node_name
        self._cache = cache
        self._pool = pool
        self._book = book
        self._writer = writer
        self._requeue_pulling = requeue_pulling
        self._requeue_idle = requeue_idle
        self._rng = rng or random.Random()

    def reconcile(self, key: str) -> controller.Result:
        """One sync of the NodeImage; returns when to look again."""
        raw = self._cache.get(self._node_name)
        if raw is None:
            self._pool.stop_all()
            self._book.clear()
            return controller.Result()
        try:
            node_image = nodeimage.NodeImage.from_dict(raw)
        except wire.InvalidObjectError as error:
            log.warning("NodeImage %s cannot be read: %s", self._node_name, error)
            return controller.Result(requeue_after=self._delay(self._requeue_idle))
        sync_plan = plan.plan_sync(node_image, workers=self._pool.versions(), known=self._book.snapshot())
        self._pool.apply(sync_plan)
        self._writer.observed_generation = node_image.metadata.generation
        status = plan.build_status(
            node_image, self._book.snapshot(), observed_generation=node_image.metadata.generation
        )
        if status.to_dict() != (raw.get("status") or {}):
            self._writer.mark_dirty()
        pulling = plan.is_still_pulling(status, node_image)
        if not sync_plan.empty:
            log.info(
                "synced NodeImage %s: started %d, stopped %d, adopted %d, forgot %d",
                self._node_name,
                len(sync_plan.start),
                len(sync_plan.stop),
                len(sync_plan.adopt),
                len(sync_plan.forget),
            )
        return controller.Result(requeue_after=self._delay(self._requeue_pulling if pulling else self._requeue_idle))

    def _delay(self, period: tuple[float, float]) -> float:
        base, jitter = period
        return base + self._rng.uniform(0.0, jitter)


def should_enqueue(old: Mapping[str, Any], new: Mapping[str, Any], last_written: Mapping[str, Any] | None) -> bool:
    """An update matters when the spec changed, or the status changed and it is not our own last write."""
    if old.get("spec") != new.get("spec"):
        return True
    status = new.get("status")
    return status != old.get("status") and status != last_written
