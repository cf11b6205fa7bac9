"""Recording Kubernetes Events (core/v1) without ever slowing down or blocking the code that records them.

`kubectl describe` shows Events, and users look there first, so controllers report progress and failures
as Events. Writing them must not cost the controller: `event()` only puts the occurrence into a bounded
buffer and returns. One background thread turns occurrences into writes through an
`eventcorrelation.EventCorrelator`, which aggregates repeats into a count update of the existing Event and
rate-limits per involved object and in total. When the buffer is full (the apiserver is slow or down), the
occurrence is dropped and counted in `counters`; an Event is a hint for humans, never worth stalling for.

Events of cluster-scoped objects (Nodes, NodeImages) go to the `default` namespace, as client-go does.
Messages are cut to `MAX_MESSAGE_LENGTH`. Callers must never put a credential into a message.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.shared import clock as clocks
from services.shared.api import timefmt
from services.shared.kube import errors, eventcorrelation, objects, resources

logger = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
CLUSTER_SCOPED_EVENT_NAMESPACE = "default"
MAX_MESSAGE_LENGTH = 1024
"""events.k8s.io/v1 limits notes to 1 kB; we hold core/v1 messages to the same."""


@dataclass(frozen=True)
class RecorderSettings:
    """Buffering and limits of an `EventRecorder`."""

    buffer_size: int = 1000
    """Occurrences waiting to be written; beyond this they are dropped (client-go's broadcaster: 1000)."""

    limits: eventcorrelation.EventLimits = field(default_factory=eventcorrelation.EventLimits)


@dataclass
class RecorderCounters:
    """What happened to recorded occurrences; export them as metrics."""

    created: int = 0
    updated: int = 0
    dropped_buffer_full: int = 0
    dropped_rate_limited: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Queued:
    occurrence: eventcorrelation.Occurrence
    at: datetime


class EventRecorder:
    """Writes Events on behalf of one component; call `start()` first and `stop()` at shutdown.

    Args:
        api: where to write.
        component: the reporting controller, e.g. "prepull.io/scheduler" (`source.component` and
            `reportingComponent`).
        instance: which replica reports, e.g. the Pod name (`reportingInstance`).
        host: the node, for node agents such as the puller (`source.host`).
        settings: buffer and limits; defaults when None.
        clock: time source; the system clock when None.
    """

    def __init__(
        self,
        api: objects.ObjectApi,
        *,
        component: str,
        instance: str = "",
        host: str = "",
        settings: RecorderSettings | None = None,
        clock: clocks.Clock | None = None,
    ) -> None:
        self._api = api
        self._component = component
        self._instance = instance
        self._host = host
        self._settings = settings or RecorderSettings()
        self._clock = clock or clocks.SystemClock()
        self._correlator = eventcorrelation.EventCorrelator(self._settings.limits, now=self._clock.monotonic())
        self._buffer: queue.Queue[_Queued] = queue.Queue(maxsize=self._settings.buffer_size)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.counters = RecorderCounters()
        self._counter_lock = threading.Lock()

    def normal(self, involved: Mapping[str, Any], reason: str, message: str) -> None:
        """Record a Normal event about `involved` (an object as a dict)."""
        self.event(involved, event_type=NORMAL, reason=reason, message=message)

    def warning(self, involved: Mapping[str, Any], reason: str, message: str) -> None:
        """Record a Warning event about `involved`."""
        self.event(involved, event_type=WARNING, reason=reason, message=message)

    def event(self, involved: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        """Queue an event; never blocks. Dropped (and counted) when the buffer is full.

        Args:
            involved: the object the event is about, as a dict with apiVersion, kind and metadata.
            event_type: `NORMAL` or `WARNING`.
            reason: a short UpperCamelCase machine-readable cause, e.g. "PullFailed".
            message: for humans; never put a credential here.
        """
        occurrence = eventcorrelation.Occurrence(_reference(involved), event_type, reason, message[:MAX_MESSAGE_LENGTH])
        try:
            self._buffer.put_nowait(_Queued(occurrence, self._clock.now()))
        except queue.Full:
            with self._counter_lock:  # callers on many threads may drop at once
                self.counters.dropped_buffer_full += 1

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name=f"events {self._component}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is buffered (for up to `timeout` seconds), then stop the writer thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def pending(self) -> int:
        """Occurrences buffered and not yet handled (approximate while the writer runs)."""
        return self._buffer.unfinished_tasks

    # --- the writer thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                item = self._buffer.get(timeout=0.2)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            try:
                self._handle(item)
            except errors.KubeError as error:
                self.counters.failed += 1
                logger.warning(
                    "could not write event %s for %s: %s", item.occurrence.reason, item.occurrence.involved.name, error
                )
            except Exception:
                self.counters.failed += 1
                logger.exception("could not write event %s", item.occurrence.reason)
            finally:
                self._buffer.task_done()

    def _handle(self, item: _Queued) -> None:
        decision = self._correlator.observe(item.occurrence, self._clock.monotonic())
        if decision.action is eventcorrelation.Action.DROP:
            self.counters.dropped_rate_limited += 1
        elif decision.action is eventcorrelation.Action.UPDATE:
            self._update(item, decision)
        else:
            self._create(item, count=1)

    def _create(self, item: _Queued, *, count: int) -> None:
        involved = item.occurrence.involved
        namespace = involved.namespace or CLUSTER_SCOPED_EVENT_NAMESPACE
        body = self._event_object(item, name=_event_name(involved.name, item.at), namespace=namespace, count=count)
        created = self._api.create(resources.EVENTS, body, namespace=namespace)
        self._correlator.created(item.occurrence, created["metadata"]["name"], count=count)
        self.counters.created += 1

    def _update(self, item: _Queued, decision: eventcorrelation.Decision) -> None:
        namespace = item.occurrence.involved.namespace or CLUSTER_SCOPED_EVENT_NAMESPACE
        patch = {"count": decision.count, "lastTimestamp": _timestamp(item.at)}
        try:
            self._api.patch(resources.EVENTS, decision.name, patch, namespace=namespace)
        except errors.NotFound:  # the apiserver's event TTL removed it; start a new one with the full count
            self._correlator.forget(item.occurrence)
            self._create(item, count=decision.count)
            return
        self.counters.updated += 1

    def _event_object(self, item: _Queued, *, name: str, namespace: str, count: int) -> dict[str, Any]:
        occurrence = item.occurrence
        involved = occurrence.involved
        source = {"component": self._component} | ({"host": self._host} if self._host else {})
        return {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                k: v
                for k, v in (
                    ("apiVersion", involved.api_version),
                    ("kind", involved.kind),
                    ("namespace", involved.namespace),
                    ("name", involved.name),
                    ("uid", involved.uid),
                )
                if v
            },
            "type": occurrence.type,
            "reason": occurrence.reason,
            "message": occurrence.message,
            "count": count,
            "firstTimestamp": _timestamp(item.at),
            "lastTimestamp": _timestamp(item.at),
            "source": source,
            "reportingComponent": self._component,
            "reportingInstance": self._instance,
        }


def _reference(obj: Mapping[str, Any]) -> eventcorrelation.ObjectRef:
    metadata = obj.get("metadata") or {}
    return eventcorrelation.ObjectRef(
        api_version=str(obj.get("apiVersion") or ""),
        kind=str(obj.get("kind") or ""),
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or ""),
    )


def _event_name(involved_name: str, at: datetime) -> str:
    """client-go's scheme: the object's name and the time in hex nanoseconds, unique enough per object."""
    return f"{involved_name}.{int(at.timestamp() * 1e9):x}"


def _timestamp(at: datetime) -> str:
    return timefmt.format_time(at.replace(microsecond=0))
