"""Serving status for the standard gRPC health service, set by the service as its state changes.

Kubernetes' native gRPC probes and load balancers ask `grpc.health.v1.Health/Check` (or `Watch`). The answer
must reflect the service, not just the process: nodeimage_sync keeps its inventory in the leader's memory, so a
standby replica reports NOT_SERVING until it leads (design §2). `Health` wraps the stock servicer (we never
hand-write `Check`/`Watch`) and knows which services the server carries, so one call flips them all.

The empty service name "" is the overall status, the one probes ask for by default.
"""

from __future__ import annotations

from collections.abc import Iterable

from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
OVERALL = ""


class Health:
    """The health service of one server: overall status plus one status per registered service."""

    def __init__(self) -> None:
        """A health servicer with no services yet; `rpc.server.create_server` registers them."""
        self.servicer = grpc_health.HealthServicer()
        self._services: tuple[str, ...] = ()

    @property
    def services(self) -> tuple[str, ...]:
        """The service names whose status this object sets (the overall "" is always included)."""
        return (OVERALL, *self._services)

    def register(self, services: Iterable[str], *, serving: bool) -> None:
        """Track `services` and give them (and the overall status) their first status."""
        self._services = tuple(dict.fromkeys((*self._services, *services)))
        self.set_serving(serving)

    def set_serving(self, serving: bool, service: str | None = None) -> None:
        """Set one service's status, or with `service=None` the overall status and every registered one."""
        status = SERVING if serving else NOT_SERVING
        for name in self.services if service is None else (service,):
            self.servicer.set(name, status)

    def enter_graceful_shutdown(self) -> None:
        """Report NOT_SERVING for everything from now on (later `set_serving` calls are ignored).

        Called first when the process is told to stop, so probes and balancers stop sending new calls while
        the calls in flight finish.
        """
        self.servicer.enter_graceful_shutdown()
