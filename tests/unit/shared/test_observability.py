"""The HTTP side of a service: metrics, liveness and readiness, on one shared or two separate ports."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from services.shared.observability import LIVENESS_PATH, METRICS_PATH, READINESS_PATH, ObservabilityServer


def get(port: int | None, path: str, accept: str | None = None, host: str = "127.0.0.1") -> tuple[int, str, str]:
    assert port is not None
    request = urllib.request.Request(f"http://{host}:{port}{path}", headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.fixture
def registry():
    registry = CollectorRegistry()
    Counter("prepull_test_pulls", "Pulls done.", registry=registry).inc(3)
    return registry


def test_one_port_serves_metrics_and_probes_when_addresses_are_equal(registry):
    ready = threading.Event()
    with ObservabilityServer(
        metrics_address="127.0.0.1:0", health_address="127.0.0.1:0", readiness=ready.is_set, registry=registry
    ) as server:
        port = server.port(METRICS_PATH)
        assert server.port(LIVENESS_PATH) == server.port(READINESS_PATH) == port

        status, content_type, body = get(port, METRICS_PATH)
        assert status == 200
        assert content_type.startswith("text/plain")
        assert "prepull_test_pulls_total 3.0" in body
        assert get(port, LIVENESS_PATH)[0] == 200
        assert get(port, READINESS_PATH)[:3:2] == (503, "readiness check failed\n")

        ready.set()
        assert get(port, READINESS_PATH)[:3:2] == (200, "ok\n")
        assert get(port, "/nope")[0] == 404


def test_separate_ports_each_serve_only_their_own_paths(registry):
    with ObservabilityServer(metrics_address="127.0.0.1:0", health_address="localhost:0", registry=registry) as server:
        metrics_port, health_port = server.port(METRICS_PATH), server.port(READINESS_PATH)
        assert metrics_port != health_port

        assert get(metrics_port, METRICS_PATH)[0] == 200
        assert get(metrics_port, READINESS_PATH)[0] == 404
        assert get(health_port, READINESS_PATH)[0] == 200
        assert get(health_port, METRICS_PATH)[0] == 404


def test_ipv6_literal_addresses_bind_an_ipv6_socket(registry):
    if not _has_ipv6():
        pytest.fail("this machine has no IPv6 loopback; the IPv6 path cannot be exercised")
    with ObservabilityServer(metrics_address="[::1]:0", health_address="0", registry=registry) as server:
        assert get(server.port(METRICS_PATH), METRICS_PATH, host="[::1]")[0] == 200


def test_openmetrics_is_served_to_scrapers_that_ask_for_it(registry):
    with ObservabilityServer(metrics_address="127.0.0.1:0", health_address="0", registry=registry) as server:
        status, content_type, body = get(
            server.port(METRICS_PATH), METRICS_PATH, accept="application/openmetrics-text; version=1.0.0"
        )
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


def test_switched_off_endpoints_have_no_port(registry):
    with ObservabilityServer(metrics_address="0", health_address="127.0.0.1:0", registry=registry) as server:
        assert server.port(METRICS_PATH) is None
        assert get(server.port(LIVENESS_PATH), LIVENESS_PATH)[0] == 200


def test_a_probe_that_raises_counts_as_failing(registry):
    def broken() -> bool:
        raise RuntimeError("cache not built")

    with ObservabilityServer(
        metrics_address="0", health_address="127.0.0.1:0", liveness=broken, registry=registry
    ) as server:
        status, _, body = get(server.port(LIVENESS_PATH), LIVENESS_PATH)
    assert (status, body) == (503, "liveness check failed\n")


def test_stop_releases_the_port(registry):
    server = ObservabilityServer(metrics_address="127.0.0.1:0", health_address="0", registry=registry)
    server.start()
    port = server.port(METRICS_PATH)
    server.stop()
    server.stop()

    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}{METRICS_PATH}", timeout=5)


def test_invalid_address_is_refused_before_binding():
    with pytest.raises(ValueError, match="invalid listen address"):
        ObservabilityServer(metrics_address="8080", health_address="0")


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True
