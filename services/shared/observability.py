"""The HTTP side of a service: `/metrics`, `/healthz` and `/readyz`, served by small background threads.

Prometheus scrapes `/metrics` on `--metrics-address`; the kubelet probes `/healthz` (liveness: is the process
working at all?) and `/readyz` (readiness: should traffic and work come here now? e.g. only the leader of
nodeimage_sync is ready) on `--health-address`. When both flags name the same address, one server answers all
three paths; otherwise each server answers only its own paths and 404s the rest, so a metrics port opened to
a scraper does not also expose the probes and vice versa. Either address may be "0" or "" to switch it off.

The gRPC port answers the standard gRPC health service too (`rpc.server`); these HTTP endpoints exist because
Prometheus speaks HTTP and because HTTP probes are what most Kubernetes tooling and humans (`curl`) expect.

Probe callables are called on the HTTP thread at every request: they must be cheap and non-blocking (read a
flag, don't call the API server). A probe that raises counts as failing, and the error is logged, not served.
The standard-library server is enough here: a scrape every few seconds and a probe every few seconds is all the
traffic these ports see.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

from services.shared import settings

log = logging.getLogger(__name__)

Probe = Callable[[], bool]
METRICS_PATH = "/metrics"
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class _Response:
    status: int
    content_type: str
    body: bytes


_Route = Callable[[str], _Response]
"""Answers a GET; the argument is the request's Accept header (metrics content negotiation)."""


def _always() -> bool:
    return True


class ObservabilityServer:
    """Serves metrics and probes on one or two addresses until `stop()`.

    Args:
        metrics_address: `--metrics-address` ("host:port", ":port", "[::1]:port"; "0"/"" disables).
        health_address: `--health-address`, same forms; equal to `metrics_address` means one shared port.
        readiness: True when the service should receive traffic and work (e.g. it leads, caches are synced).
        liveness: True unless the process is wedged and should be restarted; default: always alive.
        registry: the Prometheus registry to expose (default: the process-wide one client libraries use).
    """

    def __init__(
        self,
        *,
        metrics_address: str,
        health_address: str,
        readiness: Probe = _always,
        liveness: Probe = _always,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        """Validate the addresses; nothing listens until `start()`."""
        metrics = {METRICS_PATH: lambda accept: _metrics(registry, accept)}
        health = {
            LIVENESS_PATH: lambda _: _probe("liveness", liveness),
            READINESS_PATH: lambda _: _probe("readiness", readiness),
        }
        self._plan: dict[tuple[str, int], dict[str, _Route]] = {}
        for address, routes in ((metrics_address, metrics), (health_address, health)):
            parsed = settings.parse_http_address(address)
            if parsed is not None:
                self._plan.setdefault(parsed, {}).update(routes)
        self._servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []
        self._ports: dict[str, int] = {}

    def start(self) -> None:
        """Bind every address and serve from daemon threads; returns at once. Raises OSError if a bind fails."""
        try:
            for (host, port), routes in self._plan.items():
                server = _server_class(host)((host, port), _handler_class(routes))
                server.daemon_threads = True
                thread = threading.Thread(
                    target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=f"http-{port}", daemon=True
                )
                thread.start()
                self._servers.append((server, thread))
                self._ports.update(dict.fromkeys(routes, server.server_address[1]))
        except BaseException:
            self.stop()
            raise

    def port(self, path: str) -> int | None:
        """The bound port serving `path` (useful after binding port 0), or None when it is switched off."""
        return self._ports.get(path)

    def stop(self) -> None:
        """Stop serving and close the sockets; safe to call twice."""
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
        self._servers.clear()

    def __enter__(self) -> ObservabilityServer:
        """Start serving."""
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop serving."""
        self.stop()


def _metrics(registry: CollectorRegistry, accept: str) -> _Response:
    """The registry in the format the scraper asked for (Prometheus text or OpenMetrics)."""
    encoder, content_type = choose_encoder(accept)
    return _Response(200, content_type, encoder(registry))


def _probe(name: str, probe: Probe) -> _Response:
    try:
        healthy = probe()
    except Exception:
        log.exception("%s probe failed", name)
        healthy = False
    return _Response(200, _TEXT, b"ok\n") if healthy else _Response(503, _TEXT, f"{name} check failed\n".encode())


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _server_class(host: str) -> type[ThreadingHTTPServer]:
    """IPv6 literal hosts need an AF_INET6 socket; "" and IPv4/names use the default IPv4 one."""
    return _IPv6Server if ":" in host else ThreadingHTTPServer


def _handler_class(routes: Mapping[str, _Route]) -> type[BaseHTTPRequestHandler]:
    """A request handler answering GET on `routes` and 404 elsewhere, logging requests at DEBUG only."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(urlsplit(self.path).path)
            response = route(self.headers.get("Accept", "")) if route else _Response(404, _TEXT, b"not found\n")
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http %s", format % args)

    return Handler
