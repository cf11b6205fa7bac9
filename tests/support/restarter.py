"""Restart exited service processes, as the kubelet does for a Deployment's or DaemonSet's container.

Under `PrepullSystem` nobody restarts a process that exits; in a cluster the kubelet would (restartPolicy
Always). Chaos tests run this in a thread so that "recovers without a manual restart" means the same thing here
as in a cluster, and they read `restarts` to report how often a service exited on its own.
"""

from __future__ import annotations

import collections
import threading

from localcluster.system import PrepullSystem

RESTART_DELAY = 1.0


class Restarter:
    """Polls every service process; starts again (same argv, ports and identity) each one that has exited."""

    def __init__(self, services: PrepullSystem) -> None:
        self._services = services
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

    def _run(self) -> None:
        while not self._stop.wait(RESTART_DELAY):
            with self._paused:
                for service in list(self._services.services.values()):
                    if not service.process.alive():
                        self.restarts[service.name] += 1
                        service.process.stop()
                        service.process.start()
