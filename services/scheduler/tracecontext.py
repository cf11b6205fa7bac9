"""The job's trace (design §4): one real root span per job, and the context every later span of the job uses.

On the job's first reconcile the scheduler starts the job's root span (`ImagePullJob <ns>/<name>`), ends it at
once, and records its context on the job (annotation `prepull.io/trace-context`) and, per owner, on each tag
entry the job writes. Every later span of the job (the scheduler's `reconcile` and `nodeimage.write` spans, the
pullers' task spans) is a descendant of that root, so a trace backend shows one complete trace per job.

The root span is exported by this process, so the recorded parent always exists in the trace. With tracing off
there is no span to record; the job still gets a well-formed random `traceparent`, so the job's annotation (and
`prepull trace`) behaves the same whether or not a collector is configured; nothing is exported for it.
"""

from __future__ import annotations

import re
import secrets
import threading

from opentelemetry import trace
from opentelemetry.context import Context

from services.shared.api import constants
from services.shared.telemetry import attributes, propagation

__all__ = ["JobTraces", "is_valid", "new_traceparent", "start_job_trace", "tracer"]

_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

tracer = trace.get_tracer(__name__)


def new_traceparent() -> str:
    """A fresh W3C `traceparent` (version 00, sampled) naming no exported span: the fallback with tracing off."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def is_valid(traceparent: str | None) -> bool:
    """True for a well-formed version-00 `traceparent`."""
    return bool(traceparent) and _TRACEPARENT.fullmatch(traceparent or "") is not None


def start_job_trace(*, namespace: str, name: str, uid: str, image: str) -> str:
    """Start and end the job's root span; its `traceparent` (a random one when tracing is off)."""
    span = tracer.start_span(
        f"{constants.KIND_IMAGE_PULL_JOB} {namespace}/{name}",
        context=Context(),
        attributes={
            attributes.JOB_KIND: constants.KIND_IMAGE_PULL_JOB,
            attributes.JOB_UID: uid,
            attributes.K8S_NAMESPACE_NAME: namespace,
            attributes.JOB_NAME: name,
            attributes.CONTAINER_IMAGE_NAME: image,
        },
    )
    span.end()
    return propagation.traceparent(trace.set_span_in_context(span)) or new_traceparent()


class JobTraces:
    """The trace context of each job, from its annotation or, until that is written and seen, from memory.

    A job's root span is started once: if the annotation write fails or the cache has not caught up, the next
    reconcile reuses the context started before rather than starting a second trace for the same job.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[str, str] = {}

    def traceparent(self, *, annotation: str | None, namespace: str, name: str, uid: str, image: str) -> str:
        """The job's `traceparent`: `annotation` when valid, else the one started earlier, else a new trace."""
        if is_valid(annotation):
            with self._lock:
                self._started.pop(uid, None)
            return str(annotation)
        with self._lock:
            started = self._started.get(uid)
        if started is not None:
            return started
        started = start_job_trace(namespace=namespace, name=name, uid=uid, image=image)
        with self._lock:
            return self._started.setdefault(uid, started)

    def forget(self, uid: str) -> None:
        """The job is gone: drop a context that was never recorded."""
        with self._lock:
            self._started.pop(uid, None)
