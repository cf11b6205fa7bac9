"""Simulated nodes hosted many per process: one unchanged `PullerApp` per node, over an in-process simulated runtime.

Fifty puller processes do not fit a 2-core machine next to a control plane; fifty agents in a few processes do
(and a thousand in ten, for the benchmarks). `SimulatedNodeHosts` registers Node objects (as a kubelet would),
gives the agents one ServiceAccount bound to the puller's ClusterRole, and starts host processes:

    python -m localcluster.simnodes --kubeconfig K --nodes-file F --ready-file R [--journal-dir J] \
        --pull-latency 3s [--starters 8] [--sync-timeout 120s] [puller flags ...]

Each host runs a `PullerApp` per node named in F (its own informer, controller, status writer and events, as
a DaemonSet Pod would) over `simruntime.SimulatedImages`, and writes its PID to R once every agent's NodeImage
cache has synced. Flags the host does not know (`--backoff-initial 1s`, ...) are passed to every agent.

With `--journal-dir` every node's runtime is journaled (`simruntime.PullJournal`): tests kill a host with
SIGKILL (all its nodes lose their puller at once) and start it again, and the journals under J keep each node's
pulls and pulled images across that, and carry the hold and fault files. Without it (the benchmarks) a pull
touches no file.

What differs from production: the CRI hop (the runtime is called in-process), no credentials or inventory
service (the simulated images are public), and the agents share one ServiceAccount instead of node-bound
tokens, so the node admission policy is not exercised.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes.client
import yaml
from kubernetes.client.exceptions import ApiException

from localcluster import nodes
from localcluster.process import ManagedProcess, wait_until
from localcluster.simruntime import JournaledImages, PullJournal, SimulatedImages
from services.puller import app
from services.puller.settings import PullerSettings
from services.puller.simcri import SimulatedRuntime, SimulationSettings
from services.shared import settings as shared_settings
from services.shared.kube import client, kubeapi

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "prepull-system"
HOST_ACCOUNT = "prepull-simulated-nodes"
PULLER_CLUSTER_ROLE = "prepull-puller"
TOKEN_SECONDS = 24 * 3600
AGENT_STARTERS = 8
"""Agents a host starts concurrently by default (each lists its NodeImage and waits for its cache)."""
SYNC_TIMEOUT = 120.0
HOST_READY_TIMEOUT = 180.0
CONNECTIONS_PER_AGENT = 4
"""Connections one agent may hold at once: its NodeImage watch, a status write, an Event, a read. The agents
share one client; a pool smaller than their sum opened (and threw away) a TLS connection for most writes,
handshakes that loaded the apiserver the simulated nodes share (a real puller has its own pool)."""
SPARE_CONNECTIONS = 64
HTTP_CONFLICT = 409
SIMULATED_IMAGE_BYTES = 20 << 20

log = logging.getLogger("localcluster.simnodes")


# --- the host process ----------------------------------------------------------------------------------------


def build_agent(
    node: str, api: kubeapi.KubeApi, journal_dir: Path | None, latency: float, agent_flags: Sequence[str]
) -> app.PullerApp:
    """The puller of one simulated node: production settings parsing, the node's runtime (journaled under
    `journal_dir` when one is given)."""
    argv = ["--node-name", node, "--min-free-disk", "0", "--metrics-address", "0", "--health-address", "0"]
    settings = PullerSettings.from_args([*argv, *agent_flags], {})
    simulation = SimulationSettings(pull_latency=latency, image_size=SIMULATED_IMAGE_BYTES)
    images = (
        SimulatedImages(SimulatedRuntime(simulation))
        if journal_dir is None
        else JournaledImages(PullJournal(journal_dir, node), simulation)
    )
    return app.PullerApp(settings, api=api, images=images)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agents of the nodes in `--nodes-file` until SIGTERM (or SIGKILL)."""
    flags = argparse.ArgumentParser(prog="python -m localcluster.simnodes", description=__doc__.splitlines()[0])
    flags.add_argument("--kubeconfig", required=True)
    flags.add_argument("--nodes-file", type=Path, required=True)
    flags.add_argument("--ready-file", type=Path, required=True)
    flags.add_argument("--journal-dir", type=Path, help="journal every node's pulls here (default: no journal)")
    flags.add_argument("--pull-latency", type=shared_settings.duration, default="0s")
    flags.add_argument("--starters", type=int, default=AGENT_STARTERS, help="agents started concurrently")
    flags.add_argument("--sync-timeout", type=shared_settings.duration, default=f"{SYNC_TIMEOUT:.0f}s")
    args, agent_flags = flags.parse_known_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args.ready_file.unlink(missing_ok=True)
    names = [line.strip() for line in args.nodes_file.read_text().splitlines() if line.strip()]
    pool = len(names) * CONNECTIONS_PER_AGENT + SPARE_CONNECTIONS
    api_client = client.from_kubeconfig(
        args.kubeconfig, settings=client.ClientSettings(user_agent="prepull-puller", pool_maxsize=pool)
    )
    api = kubeapi.KubeApi(api_client)
    latency = args.pull_latency.total_seconds()
    agents = [build_agent(name, api, args.journal_dir, latency, agent_flags) for name in names]
    sync_timeout = args.sync_timeout.total_seconds()
    with futures.ThreadPoolExecutor(args.starters) as starters:
        list(starters.map(lambda agent: agent.start(sync_timeout=sync_timeout), agents))
    args.ready_file.write_text(f"{os.getpid()}\n")
    print(f"{len(agents)} agents ready", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    return 0  # the agents' threads are daemons; a node agent needs no graceful drain (pulls resume at next start)


# --- the launcher --------------------------------------------------------------------------------------------


@dataclass
class SimulatedNodeHosts:
    """Node objects plus the host processes that run their pullers; everything under `work_dir`.

    Args:
        api: an admin client (Nodes, ServiceAccount, ClusterRoleBinding, token).
        admin_kubeconfig: the admin kubeconfig (its cluster entry is reused for the agents' kubeconfig).
        work_dir: node lists, ready files, logs, the agents' kubeconfig and the pull journals.
        pull_latency: seconds each simulated pull takes (in the hosts started from then on).
        agent_flags: puller flags for every agent (shorter timers in tests).
        journaled: journal every node's pulls under `journal_dir` (hold and fault files work only then).
        starters: agents a host starts concurrently.
        sync_timeout: seconds an agent may take to sync its NodeImage cache.
        ready_timeout: seconds a host may take until all its agents synced.
    """

    api: kubernetes.client.ApiClient
    admin_kubeconfig: Path
    work_dir: Path
    pull_latency: float = 0.0
    agent_flags: Sequence[str] = ()
    journaled: bool = True
    starters: int = AGENT_STARTERS
    sync_timeout: float = SYNC_TIMEOUT
    ready_timeout: float = HOST_READY_TIMEOUT
    hosts: dict[str, ManagedProcess] = field(init=False, default_factory=dict)
    nodes_of: dict[str, list[str]] = field(init=False, default_factory=dict)
    _kubeconfig: Path | None = field(init=False, default=None)

    @property
    def journal_dir(self) -> Path:
        return self.work_dir / "journals"

    def register(self, names: Sequence[str], labels_of: Callable[[int], Mapping[str, str]]) -> None:
        """Create the Node objects (Ready, `labels_of(index)`), as kubelets would: as many at once as the admin
        client has connections (more would open connections only to throw them away)."""
        workers = max(1, int(self.api.configuration.connection_pool_maxsize))
        with futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda i: nodes.register_node(self.api, names[i], labels_of(i)), range(len(names))))

    def start_hosts(self, nodes_per_host: Mapping[str, Sequence[str]]) -> None:
        """Start a host process per entry (all at once); returns once every agent of every host has synced."""
        for host, names in nodes_per_host.items():
            self._launch(host, names)
        for host in nodes_per_host:
            self._wait_ready(host)

    def _launch(self, host: str, names: Sequence[str]) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        nodes_file = self.work_dir / f"{host}.nodes"
        nodes_file.write_text("".join(f"{name}\n" for name in names))
        argv = [sys.executable, "-m", "localcluster.simnodes", "--kubeconfig", str(self._agents_kubeconfig())]
        argv += ["--nodes-file", str(nodes_file), "--ready-file", str(self._ready_file(host))]
        argv += ["--pull-latency", f"{self.pull_latency}s", "--starters", str(self.starters)]
        argv += ["--sync-timeout", f"{self.sync_timeout}s"]
        if self.journaled:
            self.journal_dir.mkdir(parents=True, exist_ok=True)
            argv += ["--journal-dir", str(self.journal_dir)]
        argv += self.agent_flags
        process = ManagedProcess(name=host, argv=argv, log_path=self.work_dir / f"{host}.log", cwd=REPO)
        process.start()
        self.hosts[host] = process
        self.nodes_of[host] = list(names)

    def _wait_ready(self, host: str) -> None:
        process = self.hosts[host]
        wait_until(lambda: self.ready(host) or not process.alive(), timeout=self.ready_timeout, what=host)
        if not process.alive():
            raise RuntimeError(f"{host} exited at start:\n{process.log_tail()}")

    def ready(self, host: str) -> bool:
        """True when the host process now running has started every agent (its PID is in the ready file)."""
        process = self.hosts[host]
        try:
            return process.alive() and self._ready_file(host).read_text().strip() == str(process.pid)
        except FileNotFoundError:
            return False

    def journal(self, node: str) -> PullJournal:
        return PullJournal(self.journal_dir, node)

    @property
    def pids(self) -> list[int]:
        """The PIDs of the host processes running now."""
        return [process.pid for process in self.hosts.values() if process.pid is not None]

    def stop(self) -> None:
        for process in self.hosts.values():
            process.stop()
        self.hosts.clear()

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(f"----- {name} -----\n{p.log_tail(lines)}" for name, p in self.hosts.items())

    def _ready_file(self, host: str) -> Path:
        return self.work_dir / f"{host}.ready"

    def _agents_kubeconfig(self) -> Path:
        """A ServiceAccount bound to the puller's ClusterRole, and a kubeconfig with a token of it (made once)."""
        if self._kubeconfig is not None:
            return self._kubeconfig
        core = kubernetes.client.CoreV1Api(self.api)
        binding = {
            "metadata": {"name": HOST_ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": PULLER_CLUSTER_ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": HOST_ACCOUNT, "namespace": NAMESPACE}],
        }
        _create_if_absent(core.create_namespaced_service_account, NAMESPACE, {"metadata": {"name": HOST_ACCOUNT}})
        _create_if_absent(kubernetes.client.RbacAuthorizationV1Api(self.api).create_cluster_role_binding, binding)
        request = {"spec": {"expirationSeconds": TOKEN_SECONDS}}
        token = core.create_namespaced_service_account_token(HOST_ACCOUNT, NAMESPACE, request).status.token
        cluster_entry = yaml.safe_load(self.admin_kubeconfig.read_text())["clusters"][0]
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster_entry],
            "users": [{"name": HOST_ACCOUNT, "user": {"token": token}}],
            "contexts": [{"name": HOST_ACCOUNT, "context": {"cluster": cluster_entry["name"], "user": HOST_ACCOUNT}}],
            "current-context": HOST_ACCOUNT,
        }
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / "agents.kubeconfig"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(document, handle)
        self._kubeconfig = path
        return path


def _create_if_absent(create: Callable[..., object], *args: object) -> None:
    try:
        create(*args)
    except ApiException as error:
        if error.status != HTTP_CONFLICT:
            raise


if __name__ == "__main__":
    sys.exit(main())
