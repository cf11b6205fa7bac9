"""The job's trace (design §4): one real root span per job, and the context every later span of the job uses.

On the job's first reconcile the scheduler starts the job's root span (`ImagePullJob <ns>/<name>`), ends it at
once, and records its context on the job (annotation `prepull.io/trace-context`) and, per owner, on each tag
entry the job writes. Every later span of the job (the scheduler's `reconcile` and `nodeimage.write` spans, the
pullers' task spans) is a descendant of that root, so a trace backend shows one complete trace per job.

An ImageListPullJob gets its own root span (`ImageListPullJob <ns>/<name>`) and annotation the same way. Its
child ImagePullJobs are not separate traces: each child is created with its annotation already set, naming a
span of the list job's trace (`ChildJobTrace`, named `ImagePullJob <ns>/<name>` once the apiserver has named
the child). The ImagePullJob reconciler keeps a valid annotation it finds, so every span of every child lands
in the list job's trace: one list job, one trace.

The root span is exported by this process, so the recorded parent always exists in the trace. With tracing off
there is no span to record; the job still gets a well-formed random `traceparent`, so the job's annotation (and
`prepull trace`) behaves the same whether or not a collector is configured; nothing is exported for it.
"""

from __future__ import annotations

import re
import secrets
import threading
from types import TracebackType

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode

from services.shared.api import constants
from services.shared.kube import objects
from services.shared.telemetry import attributes, propagation

__all__ = ["ChildJobTrace", "JobTraces", "is_valid", "new_traceparent", "start_job_trace", "tracer"]

_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

tracer = trace.get_tracer(__name__)


def new_traceparent(trace_id: str | None = None) -> str:
    """A fresh W3C `traceparent` (version 00, sampled) naming no exported span: the fallback with tracing off.

    With `trace_id` (32 hex digits) the new context stays in that trace: a list job's child keeps its parent's
    trace id even when nothing is exported.
    """
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id_of(traceparent: str) -> str:
    """The trace id (32 hex digits) of a valid `traceparent`."""
    return traceparent.split("-")[1]


def is_valid(traceparent: str | None) -> bool:
    """True for a well-formed version-00 `traceparent`."""
    return bool(traceparent) and _TRACEPARENT.fullmatch(traceparent or "") is not None


def start_job_trace(
    *, namespace: str, name: str, uid: str, image: str = "", kind: str = constants.KIND_IMAGE_PULL_JOB
) -> str:
    """Start and end the job's root span; its `traceparent` (a random one when tracing is off)."""
    span_attributes = {
        attributes.JOB_KIND: kind,
        attributes.JOB_UID: uid,
        attributes.K8S_NAMESPACE_NAME: namespace,
        attributes.JOB_NAME: name,
    }
    if image:
        span_attributes[attributes.CONTAINER_IMAGE_NAME] = image
    span = tracer.start_span(f"{kind} {namespace}/{name}", context=Context(), attributes=span_attributes)
    span.end()
    return propagation.traceparent(trace.set_span_in_context(span)) or new_traceparent()


class ChildJobTrace:
    """The trace context of an ImagePullJob a list job is about to create: a span of the list job's trace.

    Use it around the create call: `traceparent` goes into the child's annotation, and on leaving the block
    the span is named after the child (`name(...)`, once the apiserver has chosen it) and ended; a failed
    create ends it as an error. The span's parent is the current span when that belongs to the list job's
    trace (the list job's `reconcile`), else the list job's root. With tracing off nothing is exported and
    `traceparent` is a fresh span id in the list job's trace id, so the child still shows the list's trace id.
    """

    def __init__(self, *, list_traceparent: str, namespace: str, list_name: str, image: str) -> None:
        self._namespace = namespace
        current = trace.get_current_span().get_span_context()
        list_trace_id = trace_id_of(list_traceparent)
        in_list_trace = current.is_valid and format(current.trace_id, "032x") == list_trace_id
        parent = None if in_list_trace else propagation.context_from_traceparent(list_traceparent)
        self._span = tracer.start_span(
            f"{constants.KIND_IMAGE_PULL_JOB} {namespace}/{list_name}-",
            context=parent,
            attributes={
                attributes.JOB_KIND: constants.KIND_IMAGE_PULL_JOB,
                attributes.K8S_NAMESPACE_NAME: namespace,
                attributes.CONTAINER_IMAGE_NAME: image,
            },
        )
        recorded = propagation.traceparent(trace.set_span_in_context(self._span)) if self._span.is_recording() else None
        self.traceparent = recorded or new_traceparent(list_trace_id)
        """The child job's `prepull.io/trace-context` annotation."""

    def __enter__(self) -> ChildJobTrace:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error is not None:
            self._span.record_exception(error)
            self._span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            self._span.set_attribute(attributes.ERROR_TYPE, type(error).__name__)
        self._span.end()

    def name(self, *, name: str, uid: str) -> None:
        """The apiserver created the child `name` (uid `uid`): the span takes the job's name, as a root does."""
        self._span.update_name(f"{constants.KIND_IMAGE_PULL_JOB} {self._namespace}/{name}")
        self._span.set_attribute(attributes.JOB_NAME, name)
        self._span.set_attribute(attributes.JOB_UID, uid)


class JobTraces:
    """The trace context of each job, from its annotation or, until that is written and seen, from memory.

    A job's root span is started once: if the annotation write fails or the cache has not caught up, the next
    reconcile reuses the context started before rather than starting a second trace for the same job.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[str, str] = {}

    def traceparent(
        self,
        *,
        annotation: str | None,
        namespace: str,
        name: str,
        uid: str,
        image: str = "",
        kind: str = constants.KIND_IMAGE_PULL_JOB,
    ) -> str:
        """The job's `traceparent`: `annotation` when valid, else the one started earlier, else a new trace."""
        if is_valid(annotation):
            with self._lock:
                self._started.pop(uid, None)
            return str(annotation)
        with self._lock:
            started = self._started.get(uid)
        if started is not None:
            return started
        started = start_job_trace(namespace=namespace, name=name, uid=uid, image=image, kind=kind)
        with self._lock:
            return self._started.setdefault(uid, started)

    def of_job(self, raw: objects.RawObject, kind: str) -> str:
        """`traceparent` of a job object of `kind` (ImagePullJob or ImageListPullJob)."""
        metadata = raw.get("metadata") or {}
        return self.traceparent(
            annotation=(metadata.get("annotations") or {}).get(constants.ANNOTATION_TRACE_CONTEXT),
            namespace=str(metadata.get("namespace") or ""),
            name=str(metadata.get("name") or ""),
            uid=str(metadata.get("uid") or ""),
            image=str((raw.get("spec") or {}).get("image") or ""),
            kind=kind,
        )

    def reconcile_context(self, raw: objects.RawObject | None, kind: str) -> tuple[Context | None, str]:
        """The context a reconcile of the job runs in, and the job's uid; no context once the job is gone.

        A job being deleted starts no trace: its recorded context is used if it has one.
        """
        metadata = (raw or {}).get("metadata") or {}
        uid = str(metadata.get("uid") or "")
        if raw is None or not uid:
            return None, uid
        if metadata.get("deletionTimestamp"):
            self.forget(uid)
            annotation = (metadata.get("annotations") or {}).get(constants.ANNOTATION_TRACE_CONTEXT)
            return (propagation.context_from_traceparent(annotation) if is_valid(annotation) else None), uid
        return propagation.context_from_traceparent(self.of_job(raw, kind)), uid

    def forget(self, uid: str) -> None:
        """The job is gone: drop a context that was never recorded."""
        with self._lock:
            self._started.pop(uid, None)
