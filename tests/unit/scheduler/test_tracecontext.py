"""The job's trace context: one per job, taken from the annotation once it is there."""

from __future__ import annotations

from services.scheduler import tracecontext

JOB = {"namespace": "ns", "name": "web", "uid": "uid-1", "image": "nginx:1.25"}
RECORDED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_new_job_gets_one_context_until_its_annotation_is_seen() -> None:
    traces = tracecontext.JobTraces()
    first = traces.traceparent(annotation=None, **JOB)
    assert tracecontext.is_valid(first)
    assert traces.traceparent(annotation="garbage", **JOB) == first, "a failed annotation write starts no new trace"
    assert traces.traceparent(annotation=first, **JOB) == first


def test_the_annotation_wins_and_replaces_what_was_started() -> None:
    traces = tracecontext.JobTraces()
    started = traces.traceparent(annotation=None, **JOB)
    assert traces.traceparent(annotation=RECORDED, **JOB) == RECORDED
    assert traces.traceparent(annotation=None, **JOB) != started, "forgotten once the annotation was seen"


def test_jobs_get_different_traces() -> None:
    traces = tracecontext.JobTraces()
    one = traces.traceparent(annotation=None, **JOB)
    other = traces.traceparent(annotation=None, **{**JOB, "uid": "uid-2"})
    assert one.split("-")[1] != other.split("-")[1]


def test_forget_drops_an_unrecorded_context() -> None:
    traces = tracecontext.JobTraces()
    started = traces.traceparent(annotation=None, **JOB)
    traces.forget("uid-1")
    assert traces.traceparent(annotation=None, **JOB) != started
