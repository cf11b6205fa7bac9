"""`make run`: the three services in the foreground, their logs streamed to the terminal, Ctrl-C stops them.

Like a kubebuilder project's `make run`, for working on the services against a cluster: the same code path as
the demo (`PrepullSystem`: deploy/ installed, each service a process under its own ServiceAccount). Against the
local cluster (the default, or when `KUBECONFIG` names its kubeconfig) one puller runs per local node, on that
node's containerd. Against any other cluster in `KUBECONFIG` only the scheduler and nodeimage_sync run here:
a puller needs the node's container runtime, so on a real cluster it runs as the DaemonSet.

Each service writes to its own log file; a follower tails them all and prints each new line prefixed with the
service name, so the terminal shows one interleaved log.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from localcluster import cluster
from localcluster.system import PrepullSystem, ServiceProcess

POLL_SECONDS = 0.2


def target_cluster(state_dir: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """What to run against: the local cluster's state, or a node-less state for the cluster in `KUBECONFIG`.

    Raises:
        RuntimeError: neither a running local cluster nor a `KUBECONFIG` to use.
    """
    local = cluster.read_state(state_dir)
    kubeconfig = environ.get("KUBECONFIG", "")
    local_running = local is not None and cluster.running(local)
    if local is not None and local_running and (not kubeconfig or Path(kubeconfig) == Path(local["kubeconfig"])):
        return local
    if not kubeconfig:
        raise RuntimeError(f"no running local cluster in {state_dir} and no KUBECONFIG; run `make cluster-up`")
    config = yaml.safe_load(Path(kubeconfig).read_text())
    return {
        "state_dir": str(state_dir / "external"),
        "kubeconfig": kubeconfig,
        "server": config["clusters"][0]["cluster"]["server"],
        "nodes": [],
    }


@dataclass
class LogFollower:
    """Prints new lines of each service's log file, prefixed with the service's name."""

    services: Mapping[str, ServiceProcess]
    out: TextIO = field(default_factory=lambda: sys.stdout)
    _offsets: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        width = max((len(name) for name in self.services), default=0)
        self._prefix = {name: f"{name:>{width}} | " for name in self.services}

    def poll(self) -> None:
        """Print whatever complete lines were appended since the last poll."""
        for name, service in self.services.items():
            path = service.process.log_path
            try:
                with path.open("rb") as log:
                    log.seek(self._offsets.get(name, 0))
                    data = log.read()
            except FileNotFoundError:
                continue
            complete = data[: data.rfind(b"\n") + 1]
            self._offsets[name] = self._offsets.get(name, 0) + len(complete)
            for line in complete.decode(errors="replace").splitlines():
                self.out.write(self._prefix[name] + line + "\n")
        self.out.flush()


def run_foreground(state_dir: Path, environ: Mapping[str, str] = os.environ) -> int:
    """Install deploy/, start the services, stream their logs until SIGINT/SIGTERM or a service exits."""
    state = target_cluster(state_dir, environ)
    local = state["state_dir"] == str(state_dir)
    if local:
        cluster.stop_attached(state_dir)
    extra = {key: environ[key] for key in environ if key.startswith("OTEL_")}
    system = PrepullSystem(state, extra_flags={"nodeimage_sync": ["--creation-delay", "1s"]}, env=extra)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    system.install()
    try:
        system.start()
        if local:
            cluster.record_attached(state_dir, [s.process.pid for s in system.services.values() if s.process.pid])
        print(f"running {', '.join(system.services)} against {state['server']}; Ctrl-C stops them", flush=True)
        return _follow(system, stopping)
    finally:
        system.stop()
        if local:
            cluster.record_attached(state_dir, [])


def _follow(system: PrepullSystem, stopping: threading.Event) -> int:
    follower = LogFollower(dict(system.services))
    while not stopping.wait(POLL_SECONDS):
        follower.poll()
        exited = [s.name for s in system.services.values() if not s.process.alive()]
        if exited:
            follower.poll()
            print(f"service(s) exited: {', '.join(exited)}; stopping the others", file=sys.stderr)
            return 1
    follower.poll()
    return 0
