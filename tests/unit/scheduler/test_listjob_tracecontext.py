"""An ImageListPullJob's trace: its own root span, and each child ImagePullJob's context a span of that trace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from services.scheduler import tracecontext
from services.shared.api import constants
from services.shared.telemetry import attributes, propagation

LIST = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """The module's tracer replaced by one of a real SDK provider that exports to memory (tracing on)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracecontext, "tracer", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


def test_with_tracing_off_a_child_still_gets_the_list_jobs_trace_id() -> None:
    with tracecontext.ChildJobTrace(list_traceparent=LIST, namespace="ns", list_name="base", image="a:1") as child:
        child.name(name="base-x1", uid="u1")
    assert tracecontext.is_valid(child.traceparent)
    assert child.traceparent.split("-")[1] == LIST.split("-")[1]
    assert child.traceparent != LIST


def test_a_list_job_root_span_is_named_after_its_kind(exported: InMemorySpanExporter) -> None:
    traceparent = tracecontext.start_job_trace(
        namespace="ns", name="base", uid="u0", kind=constants.KIND_IMAGE_LIST_PULL_JOB
    )
    (root,) = exported.get_finished_spans()
    assert root.name == "ImageListPullJob ns/base"
    assert root.parent is None
    assert root.attributes is not None and root.attributes[attributes.JOB_KIND] == "ImageListPullJob"
    assert attributes.CONTAINER_IMAGE_NAME not in root.attributes
    assert traceparent.split("-")[1] == format(root.context.trace_id, "032x")


def test_a_child_span_is_under_the_list_root_and_named_after_the_created_job(exported: InMemorySpanExporter) -> None:
    list_traceparent = tracecontext.start_job_trace(
        namespace="ns", name="base", uid="u0", kind=constants.KIND_IMAGE_LIST_PULL_JOB
    )
    with tracecontext.ChildJobTrace(
        list_traceparent=list_traceparent, namespace="ns", list_name="base", image="a:1"
    ) as child:
        child.name(name="base-x1", uid="u1")
    root, span = exported.get_finished_spans()
    assert span.name == "ImagePullJob ns/base-x1"
    assert span.parent is not None and span.parent.span_id == root.context.span_id
    assert span.context.trace_id == root.context.trace_id
    assert child.traceparent.split("-")[2] == format(span.context.span_id, "016x")
    assert span.attributes is not None and span.attributes[attributes.JOB_UID] == "u1"


def test_a_child_created_inside_the_list_reconcile_is_under_that_span(exported: InMemorySpanExporter) -> None:
    list_traceparent = tracecontext.start_job_trace(
        namespace="ns", name="base", uid="u0", kind=constants.KIND_IMAGE_LIST_PULL_JOB
    )
    context = propagation.context_from_traceparent(list_traceparent)
    with (
        tracecontext.tracer.start_as_current_span("reconcile", context=context) as reconcile,
        tracecontext.ChildJobTrace(list_traceparent=list_traceparent, namespace="ns", list_name="base", image="a"),
    ):
        pass
    child = next(span for span in exported.get_finished_spans() if span.name.startswith("ImagePullJob"))
    assert child.parent is not None and child.parent.span_id == reconcile.get_span_context().span_id


def test_a_failed_create_ends_the_child_span_as_an_error(exported: InMemorySpanExporter) -> None:
    child = tracecontext.ChildJobTrace(list_traceparent=LIST, namespace="ns", list_name="base", image="a:1")
    with pytest.raises(RuntimeError), child:
        raise RuntimeError("apiserver said no")
    (span,) = exported.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes[attributes.ERROR_TYPE] == "RuntimeError"
    assert span.parent is not None and format(span.parent.span_id, "016x") == LIST.split("-")[2]
