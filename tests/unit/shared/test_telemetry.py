"""Tracing: off unless `OTEL_*` asks for it, one trace across a gRPC hop, traceparent strings that round-trip."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.shared.gen.prepull.v1 import puller_pb2, puller_pb2_grpc
from services.shared.rpc import channels
from services.shared.rpc import server as rpc_server
from services.shared.telemetry import instrumentation, propagation, setup


def test_nothing_is_configured_without_otel_variables():
    before = trace.get_tracer_provider()

    tracing = setup.configure_tracing({"PATH": "/usr/bin"}, default_service_name="prepull-test")

    assert tracing.enabled is False
    assert isinstance(tracing.provider, trace.NoOpTracerProvider)
    assert trace.get_tracer_provider() is before
    span = tracing.provider.get_tracer("t").start_span("work")
    assert not span.is_recording()
    assert not span.get_span_context().is_valid
    assert tracing.force_flush() is True
    tracing.shutdown()


def test_sdk_disabled_wins_even_over_the_test_hook():
    tracing = setup.configure_tracing(
        {"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
        default_service_name="prepull-test",
        span_exporter=InMemorySpanExporter(),
        install_global=False,
    )
    assert tracing.enabled is False


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        pytest.param({}, (), id="nothing-set"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, ("otlp",), id="endpoint-implies-otlp"),
        pytest.param({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317"}, ("otlp",), id="traces-endpoint"),
        pytest.param({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, (), id="none"),
        pytest.param({"OTEL_TRACES_EXPORTER": "console"}, ("console",), id="console"),
        pytest.param({"OTEL_TRACES_EXPORTER": "otlp, Console"}, ("otlp", "console"), id="list"),
    ],
)
def test_exporter_choice(environ, exporters):
    assert setup.tracing_config(environ, default_service_name="svc").exporters == exporters


def test_service_name_resource_and_sampler_come_from_the_standard_variables():
    config = setup.tracing_config(
        {
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=dev,team=platform%20ops",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4317",
        },
        default_service_name="prepull-scheduler",
    )

    assert config.service_name == "prepull-scheduler"
    assert config.resource_attributes == {
        "deployment.environment": "dev",
        "team": "platform ops",
        "service.name": "prepull-scheduler",
    }
    assert (config.sampler, config.sampler_ratio) == ("parentbased_traceidratio", 0.25)
    assert config.otlp_endpoint == "http://traces:4317"
    named = setup.tracing_config(
        {"OTEL_SERVICE_NAME": "custom", "OTEL_RESOURCE_ATTRIBUTES": "service.name=r"}, default_service_name="d"
    )
    assert named.service_name == "custom"


def test_every_invalid_variable_is_reported_at_once():
    with pytest.raises(ValueError) as raised:
        setup.tracing_config(
            {
                "OTEL_TRACES_EXPORTER": "jaeger",
                "OTEL_TRACES_SAMPLER": "sometimes",
                "OTEL_RESOURCE_ATTRIBUTES": "novalue",
            },
            default_service_name="svc",
        )
    message = str(raised.value)
    assert "OTEL_TRACES_EXPORTER: unknown exporter(s) jaeger" in message
    assert "OTEL_TRACES_SAMPLER: unknown sampler 'sometimes'" in message
    assert "OTEL_RESOURCE_ATTRIBUTES: 'novalue' is not key=value" in message
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL: only 'grpc' is supported"):
        setup.tracing_config(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            default_service_name="svc",
        )
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER_ARG: '2' is not a ratio"):
        setup.tracing_config(
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, default_service_name="s"
        )


@pytest.fixture
def in_memory():
    exporter = InMemorySpanExporter()
    tracing = setup.configure_tracing(
        {}, default_service_name="prepull-test", span_exporter=exporter, install_global=False
    )
    yield tracing, exporter
    tracing.shutdown()


class TracedPuller(puller_pb2_grpc.PullerServicer):
    """Records the traceparent current inside the servicer."""

    seen: str | None = None

    def ListImages(self, request, context):
        TracedPuller.seen = propagation.traceparent()
        return puller_pb2.ListImagesResponse()

    def PullImage(self, request, context):
        raise NotImplementedError

    def ImageStatus(self, request, context):
        raise NotImplementedError


def test_a_grpc_call_is_one_trace_from_client_to_server(in_memory):
    tracing, exporter = in_memory
    assert tracing.enabled
    server, port = rpc_server.create_server(
        "127.0.0.1:0",
        [(puller_pb2_grpc.add_PullerServicer_to_server, TracedPuller())],
        interceptors=[instrumentation.server_interceptor(tracing.provider)],
    )
    server.start()
    try:
        with channels.create_channel(f"127.0.0.1:{port}", tracer_provider=tracing.provider) as channel:
            puller_pb2_grpc.PullerStub(channel).ListImages(puller_pb2.ListImagesRequest(), timeout=10)
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    finally:
        server.stop(0).wait()

    spans = {span.kind: span for span in exporter.get_finished_spans()}
    assert set(spans) == {trace.SpanKind.CLIENT, trace.SpanKind.SERVER}, "health checks are not traced"
    client_span, server_span = spans[trace.SpanKind.CLIENT], spans[trace.SpanKind.SERVER]
    assert client_span.name == server_span.name == "/prepull.v1.Puller/ListImages"
    assert server_span.context.trace_id == client_span.context.trace_id
    assert server_span.parent.span_id == client_span.context.span_id
    assert server_span.resource.attributes["service.name"] == "prepull-test"
    seen = propagation.span_context_from_traceparent(TracedPuller.seen)
    assert seen is not None and seen.trace_id == client_span.context.trace_id


def test_traceparent_round_trips_through_a_string(in_memory):
    tracing, exporter = in_memory
    tracer = tracing.provider.get_tracer("test")

    with tracer.start_as_current_span("scheduler reconcile") as parent:
        stored = propagation.traceparent()
    with tracer.start_as_current_span("puller task", context=propagation.context_from_traceparent(stored)) as child:
        pass

    assert stored is not None
    version, trace_id, span_id, flags = stored.split("-")
    assert (version, trace_id, span_id) == (
        "00",
        f"{parent.get_span_context().trace_id:032x}",
        f"{parent.get_span_context().span_id:016x}",
    )
    assert int(flags, 16) & 0x01, "sampled"
    remote = propagation.span_context_from_traceparent(stored)
    assert remote is not None and remote.is_remote
    assert (remote.trace_id, remote.span_id) == (parent.get_span_context().trace_id, parent.get_span_context().span_id)
    assert child.get_span_context().trace_id == parent.get_span_context().trace_id
    assert child.parent.span_id == parent.get_span_context().span_id
    assert len(exporter.get_finished_spans()) == 2


@pytest.mark.parametrize("value", [None, "", "garbage", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"])
def test_absent_or_invalid_traceparent_starts_a_new_trace(value):
    assert propagation.span_context_from_traceparent(value) is None
    assert trace.get_current_span(propagation.context_from_traceparent(value)).get_span_context().is_valid is False


def test_no_traceparent_without_a_recording_span():
    assert propagation.traceparent() is None


def test_context_travels_in_grpc_metadata(in_memory):
    tracing, _ = in_memory
    with tracing.provider.get_tracer("test").start_as_current_span("caller") as span:
        metadata = propagation.inject_metadata([("x-request", "1")])

    assert metadata[0] == ("x-request", "1")
    extracted = trace.get_current_span(propagation.extract_metadata([*metadata, ("blob-bin", b"\x00")]))
    assert extracted.get_span_context().trace_id == span.get_span_context().trace_id


def test_console_exporter_prints_spans(capsys):
    tracing = setup.configure_tracing(
        {"OTEL_TRACES_EXPORTER": "console"}, default_service_name="prepull-test", install_global=False
    )
    with tracing.provider.get_tracer("test").start_as_current_span("visible work"):
        pass
    tracing.shutdown()

    assert json.loads(capsys.readouterr().out)["name"] == "visible work"


def test_global_install_happens_once_per_process():
    # In a child process: the process-wide provider can be set only once, and tests share this one.
    script = (
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from services.shared.telemetry import setup\n"
        "env = {'OTEL_TRACES_EXPORTER': 'console'}\n"
        "tracing = setup.configure_tracing(env, default_service_name='a')\n"
        "assert trace.get_tracer_provider() is tracing.provider\n"
        "assert isinstance(tracing.provider, TracerProvider)\n"
        "try:\n"
        "    setup.configure_tracing(env, default_service_name='b')\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert "already installed" in result.stdout
