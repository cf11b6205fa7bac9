"""The local OTLP receiver, fed by the real OTLP/gRPC exporter that the services use.

Each "process" here is its own `TracerProvider` built by `services.shared.telemetry.setup` from `OTEL_*`
variables, with its own `service.name`, OTLP exporter and batch processor; the trace crosses from one to the
other only as a `traceparent` string, the way it crosses the API server between the scheduler and a puller.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from localcluster.otlpreceiver import OtlpReceiver, SpanFile
from localcluster.process import ManagedProcess, free_port, wait_until
from services.shared.telemetry import attributes, propagation
from tests.integration.cli.conftest import ProviderFactory

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


def spans_by_name(spans: SpanFile, count: int) -> dict[str, dict[str, object]]:
    """Wait until `count` spans are stored; return them by name (names are unique in these tests)."""
    wait_until(lambda: len(spans.read()) >= count, timeout=TIMEOUT, what=f"{count} spans in {spans.path}")
    records = spans.read()
    assert len(records) == count
    return {str(r["name"]): r for r in records}


def test_spans_of_two_processes_are_stored_with_their_parentage(
    receiver: OtlpReceiver, exporting_provider: ProviderFactory
) -> None:
    scheduler = exporting_provider(receiver.endpoint, "prepull-scheduler")
    puller = exporting_provider(receiver.endpoint, "prepull-puller")

    with scheduler.get_tracer("test").start_as_current_span("reconcile"):
        traceparent = propagation.traceparent()
    assert traceparent is not None
    job_context = propagation.context_from_traceparent(traceparent)
    tracer = puller.get_tracer("test")
    node = {attributes.K8S_NODE_NAME: "node-a"}
    with (
        tracer.start_as_current_span("pull", context=job_context, attributes=node),
        tracer.start_as_current_span("PullImage", kind=trace.SpanKind.CLIENT) as call,
    ):
        call.set_status(Status(StatusCode.ERROR, "registry said 500"))
    scheduler.force_flush()
    puller.force_flush()

    spans = spans_by_name(receiver.spans, 3)
    reconcile, pull, pull_image = spans["reconcile"], spans["pull"], spans["PullImage"]
    assert reconcile["service.name"] == "prepull-scheduler"
    assert pull["service.name"] == pull_image["service.name"] == "prepull-puller"
    assert reconcile["trace_id"] == pull["trace_id"] == pull_image["trace_id"] == traceparent.split("-")[1]
    assert reconcile["parent_span_id"] == ""
    assert pull["parent_span_id"] == reconcile["span_id"] == traceparent.split("-")[2]
    assert pull_image["parent_span_id"] == pull["span_id"]
    assert pull["attributes"] == {attributes.K8S_NODE_NAME: "node-a"}
    assert pull_image["kind"] == "CLIENT"
    assert pull_image["status"] == {"code": "ERROR", "message": "registry said 500"}
    assert 0 < int(str(pull["start_time_unix_nano"])) <= int(str(pull_image["start_time_unix_nano"]))
    assert int(str(pull_image["end_time_unix_nano"])) <= int(str(pull["end_time_unix_nano"]))


def test_everything_sent_is_stored_verbatim_so_a_search_for_a_credential_is_conclusive(
    receiver: OtlpReceiver, exporting_provider: ProviderFactory
) -> None:
    """Nothing is redacted or dropped: a full-system test that finds no credential in the file has proof."""
    canaries = [f"canary-{place}-1" for place in ("resource", "attr", "list", "event", "link")]
    provider = exporting_provider(
        receiver.endpoint, "prepull-puller", {"OTEL_RESOURCE_ATTRIBUTES": "deployment=canary-resource-1"}
    )
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("linked") as linked:
        link_target = linked.get_span_context()
    with tracer.start_as_current_span(
        "everything",
        links=[trace.Link(link_target, {"why": "canary-link-1"})],
        attributes={"s": "canary-attr-1", "l": ["x", "canary-list-1"], "i": 7, "f": 1.5, "b": True},
    ) as span:
        span.add_event("retry", {"reason": "canary-event-1"})
    provider.force_flush()

    spans = spans_by_name(receiver.spans, 2)
    text = receiver.spans.path.read_text()
    assert all(canary in text for canary in canaries)
    everything = spans["everything"]
    assert everything["attributes"] == {"s": "canary-attr-1", "l": ["x", "canary-list-1"], "i": 7, "f": 1.5, "b": True}
    assert everything["resource"]["deployment"] == "canary-resource-1"  # type: ignore[index]
    assert everything["events"][0]["attributes"] == {"reason": "canary-event-1"}  # type: ignore[index]
    assert everything["links"] == [
        {
            "trace_id": spans["linked"]["trace_id"],
            "span_id": spans["linked"]["span_id"],
            "trace_state": "",
            "attributes": {"why": "canary-link-1"},
        }
    ]


def test_concurrent_exports_never_interleave_lines(receiver: OtlpReceiver, exporting_provider: ProviderFactory) -> None:
    providers = [exporting_provider(receiver.endpoint, f"svc-{n}") for n in range(4)]

    def emit(index: int) -> None:
        tracer = providers[index].get_tracer("test")
        for number in range(50):
            with tracer.start_as_current_span(f"s{index}-{number}", attributes={"pad": "x" * 2000}):
                pass
        providers[index].force_flush()

    threads = [threading.Thread(target=emit, args=(n,)) for n in range(len(providers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)

    names = spans_by_name(receiver.spans, 200)
    assert set(names) == {f"s{i}-{n}" for i in range(4) for n in range(50)}


def test_the_receiver_runs_as_a_managed_process_and_keeps_its_file_across_restarts(
    tmp_path: Path, exporting_provider: ProviderFactory
) -> None:
    out = tmp_path / "spans" / "spans.jsonl"
    port = free_port()
    process = ManagedProcess(
        name="otlpreceiver",
        argv=[sys.executable, "-m", "localcluster.otlpreceiver", "--port", str(port), "--out", str(out)],
        log_path=tmp_path / "otlpreceiver.log",
    )
    process.start()
    try:
        wait_until(lambda: "listening" in process.log_path.read_text(), timeout=TIMEOUT, what="receiver start")
        provider = exporting_provider(f"http://127.0.0.1:{port}", "before-restart")
        with provider.get_tracer("test").start_as_current_span("first"):
            pass
        provider.force_flush()
        spans_by_name(SpanFile(out), 1)

        process.restart()
        wait_until(lambda: process.log_path.read_text().count("listening") == 2, timeout=TIMEOUT, what="restart")
        provider = exporting_provider(f"http://127.0.0.1:{port}", "after-restart")
        with provider.get_tracer("test").start_as_current_span("second"):
            pass
        provider.force_flush()

        spans = spans_by_name(SpanFile(out), 2)
        assert spans["first"]["service.name"] == "before-restart"
        assert spans["second"]["service.name"] == "after-restart"
        assert all(json.loads(line) for line in out.read_text().splitlines())
    finally:
        process.stop()
    assert process.log_path.read_text().count("otlpreceiver stopped") == 2, "SIGTERM stops it cleanly, both times"
