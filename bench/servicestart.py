"""Starting nodeimage_sync and the scheduler on a large seeded state, with more patience than the harness.

`PrepullSystem.start` gives each service 90 s to answer on its health port; with hundreds of thousands of
seeded tag entries the scheduler needs longer to list and parse the NodeImages before it answers. The
processes keep running when that wait gives up, so this keeps waiting (up to `timeout`) for both to report
ready, and says how long it took; a benchmark reports that time instead of failing.
"""

from __future__ import annotations

import time

from bench.simcluster import SimCluster
from localcluster.process import wait_until


def start_services(sim: SimCluster, *, timeout: float) -> float:
    """Start both services; seconds until both are ready (leading), however long within `timeout`."""
    started = time.monotonic()
    try:
        sim.start_services()
    except TimeoutError:
        assert sim.system is not None
        for service in sim.system.services.values():
            if not service.process.alive():
                raise
            remaining = max(1.0, timeout - (time.monotonic() - started))
            wait_until(service.ready, timeout=remaining, interval=1.0, what=f"{service.name} /readyz")
    return time.monotonic() - started
