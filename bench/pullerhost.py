"""Many node agents in one process: one unchanged `PullerApp` per simulated node, each with its own runtime.

`python -m bench.pullerhost --kubeconfig K --nodes-file F --ready-file R` starts a `PullerApp` for every node
named in F (one per line) and touches R once every agent's NodeImage cache has synced. The agents share one
API client (connection pool) but each runs the puller's own informer (a watch of its own NodeImage),
controller, status writer and event recorder, exactly as a DaemonSet Pod would. What differs from production:
the CRI runtime is the in-process simulated one (`bench.simimages`), no credentials or inventory service is
called (the images are public and simulated), and the agents share one ServiceAccount with the puller's
ClusterRole instead of node-bound tokens (the node admission policy is not exercised).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path

from bench.simimages import SimulatedImages
from services.puller import app
from services.puller.settings import PullerSettings
from services.puller.simcri import SimulatedRuntime, SimulationSettings
from services.shared import settings as shared_settings
from services.shared.kube import client, kubeapi

log = logging.getLogger("bench.pullerhost")
STARTERS = 16
"""Agents started concurrently (each start lists its NodeImage and waits for the cache)."""
CONNECTIONS_PER_AGENT = 4
"""Connections one agent may hold at once: its NodeImage watch, a status write, an Event, a read. The agents
share one client; a pool smaller than their sum opened (and threw away) a TLS connection for most writes,
handshakes that loaded the apiserver the simulated nodes share (a real puller has its own pool)."""


def build_agent(node: str, api: kubeapi.KubeApi, pull_latency: float, workers: int) -> app.PullerApp:
    argv = ["--node-name", node, "--workers", str(workers), "--min-free-disk", "0"]
    settings = PullerSettings.from_args([*argv, "--metrics-address", "0", "--health-address", "0"], {})
    runtime = SimulatedRuntime(SimulationSettings(pull_latency=pull_latency, image_size=20 << 20))
    return app.PullerApp(settings, api=api, images=SimulatedImages(runtime))


def main(argv: Sequence[str] | None = None) -> int:
    flags = argparse.ArgumentParser(prog="python -m bench.pullerhost", description=__doc__)
    flags.add_argument("--kubeconfig", required=True)
    flags.add_argument("--nodes-file", type=Path, required=True)
    flags.add_argument("--ready-file", type=Path, required=True)
    flags.add_argument("--pull-latency", type=shared_settings.duration, default="0s")
    flags.add_argument("--workers", type=int, default=4, help="pull workers per agent")
    args = flags.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    nodes = [line.strip() for line in args.nodes_file.read_text().splitlines() if line.strip()]
    api_client = client.from_kubeconfig(
        args.kubeconfig,
        settings=client.ClientSettings(
            user_agent="prepull-puller", pool_maxsize=len(nodes) * CONNECTIONS_PER_AGENT + 64
        ),
    )
    api = kubeapi.KubeApi(api_client)
    latency = args.pull_latency.total_seconds()
    agents = [build_agent(node, api, latency, args.workers) for node in nodes]
    with futures.ThreadPoolExecutor(STARTERS) as pool:
        list(pool.map(lambda agent: agent.start(sync_timeout=300.0), agents))
    args.ready_file.write_text(f"{len(agents)}\n")
    print(f"{len(agents)} agents ready", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    return 0  # daemon threads end with the process; a bench host needs no graceful drain


if __name__ == "__main__":
    sys.exit(main())
