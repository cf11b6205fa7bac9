"""Restart exited service processes, as the kubelet does for a Deployment's or DaemonSet's container.

Under `PrepullSystem` nobody restarts a process that exits; in a cluster the kubelet would (restartPolicy
Always). Chaos tests run this in a thread so that "recovers without a manual restart" means the same thing here
as in a cluster, and they read `restarts` to report how often a service exited on its own. Processes that are
not `PrepullSystem` services (e.g. the hosts of simulated node agents) are watched too when `also` names them.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Mapping

from localcluster.process import ManagedProcess
from localcluster.system import PrepullSystem

RESTART_DELAY = 1.0


class Restarter:
    """Polls every service process; starts again (same argv, ports and identity) each one that has exited.

    Args:
        services: the three services.
        also: more processes to keep running, by name (read on every poll, so processes added later count).
    """

    def __init__(
        self, services: PrepullSystem, *, also: Callable[[], Mapping[str, ManagedProcess]] = lambda: {}
    ) -> None:
        self._services = services
        self._also = also
        self._stop = threading.Event()
        self._paused = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="restarter", daemon=True)
        self.restarts: collections.Counter[str] = collections.Counter()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def paused(self) -> threading.Lock:
        """Hold this while killing a process on purpose, so the restart is counted once and not raced."""
        return self._paused

    def watched(self) -> dict[str, ManagedProcess]:
        """Every process this restarter keeps running, by name."""
        current = list(self._services.services.values())  # one C-level copy: the dict may change meanwhile
        services = {service.name: service.process for service in current}
        return services | dict(self._also())

    def _run(self) -> None:
        while not self._stop.wait(RESTART_DELAY):
            with self._paused:
                for name, process in self.watched().items():
                    if not process.alive():
                        self.restarts[name] += 1
                        process.stop()
                        process.start()
