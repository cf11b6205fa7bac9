"""A coalesced write joins the trace of the newest pull it carries and links the others."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.puller.tracelinks import MAX_PENDING, PendingTraces


def tracing() -> tuple[trace.Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def test_the_write_is_a_child_of_the_newest_pull_and_links_the_others() -> None:
    tracer, exporter = tracing()
    pending = PendingTraces()
    with tracer.start_as_current_span("pull a") as first:
        pending.add_current()
    with tracer.start_as_current_span("pull b") as second:
        pending.add_current()
        pending.add_current()
    with pending.span(tracer, "write", {"k8s.node.name": "n"}) as span:
        assert span is not None
    write = next(s for s in exporter.get_finished_spans() if s.name == "write")
    assert write.parent is not None and write.parent.span_id == second.get_span_context().span_id
    assert [link.context.span_id for link in write.links] == [first.get_span_context().span_id]
    assert write.attributes is not None and write.attributes["k8s.node.name"] == "n"
    assert pending.take() is None, "taken contexts are forgotten"


def test_no_pending_pull_means_no_span() -> None:
    tracer, exporter = tracing()
    pending = PendingTraces()
    pending.add_current()  # outside any span: nothing to remember
    with pending.span(tracer, "write") as span:
        assert span is None
    assert exporter.get_finished_spans() == ()


def test_only_the_newest_pulls_are_kept() -> None:
    tracer, _ = tracing()
    pending = PendingTraces()
    ids = []
    for number in range(MAX_PENDING + 5):
        with tracer.start_as_current_span(f"pull {number}") as span:
            pending.add_current()
            ids.append(span.get_span_context().span_id)
    taken = pending.take()
    assert taken is not None
    parent, links = taken
    assert trace.get_current_span(parent).get_span_context().span_id == ids[-1]
    assert [link.context.span_id for link in links] == ids[-MAX_PENDING:-1]
