"""The one place that builds the OpenTelemetry SDK: tracer provider, sampler and exporters, from `OTEL_*`.

Every service calls `configure_tracing(os.environ, default_service_name=...)` once at start-up and
`shutdown()` on exit (which flushes spans still queued). Configuration is only the standard variables
(principle 7), read from the mapping passed in, so the decision is a pure function of it:

| Variable | Effect |
|---|---|
| `OTEL_SDK_DISABLED=true` | nothing is installed, whatever else is set |
| `OTEL_TRACES_EXPORTER` | `otlp`, `console`, `none`, or a comma-separated list |
| `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT` | OTLP/gRPC collector (`http://collector:4317`) |
| `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | resource attributes (`service.name` defaults to the service's) |
| `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the spec's samplers; default `parentbased_always_on` |

One deliberate difference from the specification: the spec's default exporter is `otlp`, which would make
every service try `localhost:4317` forever on a cluster without a collector. Here the default is `otlp` only
when an OTLP endpoint is set, and `none` otherwise. So with no `OTEL_*` variable at all, no SDK is installed:
the API's no-op tracer answers every `get_tracer`, nothing is exported, and tracing costs a few calls per span
site (design §4). The OTLP exporter itself still reads its other settings (headers, certificate, timeout,
compression, `OTEL_EXPORTER_OTLP_INSECURE`) from the process environment, as the SDK always does; a
collector URL with `http://` means plaintext.

Only the OTLP/gRPC protocol is shipped (`opentelemetry-exporter-otlp-proto-grpc`); asking for `http/protobuf`
is an error rather than a silent fallback. All invalid variables are reported together in one `ValueError`.

Test hook: pass `span_exporter=` (e.g. an `InMemorySpanExporter`) to export there synchronously instead of to
what the environment names; pass `install_global=False` to get a provider without touching the process-wide
one (then hand `tracing.provider` to the interceptors explicitly).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.semconv.attributes import service_attributes

EXPORTERS = ("otlp", "console", "none")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
DEFAULT_SAMPLER = "parentbased_always_on"
_TRUE = "true"


@dataclass(frozen=True)
class TracingConfig:
    """What the `OTEL_*` variables ask for (see the module docstring)."""

    service_name: str
    exporters: tuple[str, ...] = ()
    """Exporter names to use; empty when nothing is to be exported."""
    otlp_endpoint: str | None = None
    disabled: bool = False
    """`OTEL_SDK_DISABLED=true`: not even the test hook installs anything."""
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    sampler: str = DEFAULT_SAMPLER
    sampler_ratio: float = 1.0


def tracing_config(environ: Mapping[str, str], *, default_service_name: str) -> TracingConfig:
    """Read the tracing configuration from `environ`.

    Raises:
        ValueError: one message listing every invalid variable.
    """
    problems: list[str] = []
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == _TRUE:
        return TracingConfig(service_name=default_service_name, disabled=True)
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    exporters = _exporters(environ.get("OTEL_TRACES_EXPORTER", ""), endpoint, problems)
    if "otlp" in exporters:
        _check_protocol(environ, problems)
    resource = _resource_attributes(environ.get("OTEL_RESOURCE_ATTRIBUTES", ""), problems)
    name = environ.get("OTEL_SERVICE_NAME") or resource.get(service_attributes.SERVICE_NAME) or default_service_name
    sampler, ratio = _sampler(environ, problems)
    if problems:
        raise ValueError("invalid OpenTelemetry settings: " + "; ".join(problems))
    return TracingConfig(
        service_name=name,
        exporters=exporters,
        otlp_endpoint=endpoint,
        resource_attributes={**resource, service_attributes.SERVICE_NAME: name},
        sampler=sampler,
        sampler_ratio=ratio,
    )


def _exporters(value: str, endpoint: str | None, problems: list[str]) -> tuple[str, ...]:
    names = [name.strip().lower() for name in value.split(",") if name.strip()] or (["otlp"] if endpoint else [])
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        problems.append(f"OTEL_TRACES_EXPORTER: unknown exporter(s) {', '.join(unknown)} (use {', '.join(EXPORTERS)})")
    return tuple(dict.fromkeys(name for name in names if name in EXPORTERS and name != "none"))


def _check_protocol(environ: Mapping[str, str], problems: list[str]) -> None:
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        if environ.get(variable, "grpc").strip().lower() != "grpc":
            problems.append(f"{variable}: only 'grpc' is supported, got {environ[variable]!r}")
            return


def _resource_attributes(value: str, problems: list[str]) -> dict[str, str]:
    """Parse `key=value,key2=value2` (values percent-encoded, per the spec)."""
    attributes: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, separator, raw = item.partition("=")
        if not separator or not key.strip():
            problems.append(f"OTEL_RESOURCE_ATTRIBUTES: {item!r} is not key=value")
            continue
        attributes[key.strip()] = unquote(raw.strip())
    return attributes


def _sampler(environ: Mapping[str, str], problems: list[str]) -> tuple[str, float]:
    name = environ.get("OTEL_TRACES_SAMPLER", DEFAULT_SAMPLER).strip().lower() or DEFAULT_SAMPLER
    if name not in SAMPLERS:
        problems.append(f"OTEL_TRACES_SAMPLER: unknown sampler {name!r} (use {', '.join(SAMPLERS)})")
    raw = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if not raw or not name.endswith("traceidratio"):
        return name, 1.0
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        problems.append(f"OTEL_TRACES_SAMPLER_ARG: {raw!r} is not a ratio between 0 and 1")
    return name, ratio


def _make_sampler(config: TracingConfig) -> sampling.Sampler:
    root: sampling.Sampler = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(config.sampler_ratio),
    }[config.sampler.removeprefix("parentbased_")]
    return sampling.ParentBased(root) if config.sampler.startswith("parentbased_") else root


@dataclass(frozen=True)
class Tracing:
    """The result of `configure_tracing`: the provider to use, and how to flush it on exit."""

    provider: trace.TracerProvider
    """An SDK provider when enabled; the API's no-op provider otherwise."""
    enabled: bool

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export spans still queued; True when done in time (always True when disabled)."""
        return self.provider.force_flush(timeout_millis) if isinstance(self.provider, TracerProvider) else True

    def shutdown(self) -> None:
        """Flush and stop exporting; call once, on exit."""
        if isinstance(self.provider, TracerProvider):
            self.provider.shutdown()


def configure_tracing(
    environ: Mapping[str, str],
    *,
    default_service_name: str,
    span_exporter: SpanExporter | None = None,
    install_global: bool = True,
) -> Tracing:
    """Build tracing from `environ` and, when enabled, install it as the process-wide provider.

    Args:
        environ: the environment (`os.environ` in services, a dict in tests).
        default_service_name: `service.name` unless `OTEL_SERVICE_NAME` or the resource attributes set one.
        span_exporter: test hook; export here, synchronously, instead of to the environment's exporters.
        install_global: set the process-wide provider (services: yes; tests may keep it local).

    Raises:
        ValueError: invalid `OTEL_*` variables (all listed).
        RuntimeError: `install_global` while another SDK provider is already installed (OpenTelemetry would
            silently keep the old one).
    """
    config = tracing_config(environ, default_service_name=default_service_name)
    if config.disabled or (span_exporter is None and not config.exporters):
        return Tracing(provider=trace.NoOpTracerProvider(), enabled=False)
    provider = TracerProvider(resource=Resource(dict(config.resource_attributes)), sampler=_make_sampler(config))
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    else:
        for name in config.exporters:
            provider.add_span_processor(_processor(name, config))
    if install_global:
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            provider.shutdown()
            raise RuntimeError("a tracer provider is already installed in this process; configure tracing once")
        trace.set_tracer_provider(provider)
    return Tracing(provider=provider, enabled=True)


def _processor(name: str, config: TracingConfig) -> SimpleSpanProcessor | BatchSpanProcessor:
    if name == "console":
        # `out` given here: the exporter's default is the stdout of import time, not of now.
        return SimpleSpanProcessor(ConsoleSpanExporter(service_name=config.service_name, out=sys.stdout))
    # Imported here: loading the exporter (and its gRPC/protobuf stack) costs start-up time nobody without a
    # collector should pay.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

    return BatchSpanProcessor(OTLPSpanExporter(endpoint=config.otlp_endpoint))
