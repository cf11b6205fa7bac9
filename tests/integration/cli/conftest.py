"""Fixtures for the `prepull trace` tests: a real local OTLP receiver and real OTLP exporters talking to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from localcluster.otlpreceiver import OtlpReceiver
from services.shared.telemetry import setup

ProviderFactory = Callable[..., TracerProvider]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    """An in-process receiver on a free loopback port, storing spans in `<tmp>/spans.jsonl`."""
    with OtlpReceiver(tmp_path / "spans.jsonl") as running:
        yield running


@pytest.fixture
def exporting_provider() -> Iterator[ProviderFactory]:
    """Make tracer providers the way a service does: `setup.configure_tracing` from `OTEL_*` variables.

    Call it as `factory(endpoint, service_name, extra_env)`. Each provider stands for one service process
    (its own resource, its own OTLP exporter and batch processor); none is installed process-wide. All are
    shut down afterwards, which flushes what is still queued.
    """
    made: list[setup.Tracing] = []

    def make(endpoint: str, service_name: str, extra_env: Mapping[str, str] | None = None) -> TracerProvider:
        environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": service_name, **(extra_env or {})}
        tracing = setup.configure_tracing(environ, default_service_name=service_name, install_global=False)
        assert tracing.enabled
        assert isinstance(tracing.provider, TracerProvider)
        made.append(tracing)
        return tracing.provider

    yield make
    for tracing in made:
        tracing.shutdown()
