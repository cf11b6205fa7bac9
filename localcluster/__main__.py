"""`python -m localcluster up|down|status|demo|run`: the local cluster as a long-lived thing (`make cluster-up`).

`demo` is `make demo` (localcluster.demo); `run` is `make run`, the services in the foreground
(localcluster.foreground).

`up` is idempotent: when `<state>/cluster.json` names processes that all still run and the apiserver answers,
it prints how to reach that cluster and starts nothing. Processes outlive this command (each is a session
leader); a detached `refresh-tokens` child keeps the nodes' Pod-bound tokens fresh. `down` stops exactly the
PIDs recorded in cluster.json.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config

from localcluster import cluster, demo, foreground, identity

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".localcluster"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="default: %(default)s")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the local cluster, or re-use the running one")
    up.add_argument("--nodes", type=int, default=cluster.DEFAULT_NODE_COUNT, help="default: %(default)s")
    commands.add_parser("down", help="stop the processes the running cluster recorded")
    commands.add_parser("status", help="print how to reach the running cluster")
    commands.add_parser("refresh-tokens", help="(internal) keep the nodes' token files fresh until SIGTERM")
    demo_command = commands.add_parser("demo", help="the whole system on the local cluster, watched live")
    demo_command.add_argument("--teardown", action="store_true", help="stop the cluster at the end, not keep it")
    demo_command.add_argument(
        "--timeout", type=float, default=demo.DEFAULT_TIMEOUT, help="seconds for all jobs to finish (%(default)s)"
    )
    commands.add_parser("run", help="the three services in the foreground against the local cluster or $KUBECONFIG")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state_dir: Path = args.state_dir.resolve()
    if args.command == "up":
        return cluster_up(state_dir, args.nodes)
    if args.command == "down":
        return cluster_down(state_dir)
    if args.command == "status":
        return cluster_status(state_dir)
    if args.command == "demo":
        return demo.Demo(state_dir, timeout=args.timeout).run(teardown=args.teardown)
    if args.command == "run":
        return foreground.run_foreground(state_dir)
    return refresh_tokens(state_dir)


def cluster_up(state_dir: Path, node_count: int) -> int:
    """Start (or re-use) the cluster and print how to use it."""
    state = cluster.read_state(state_dir)
    if state is not None and cluster.running(state) and _apiserver_answers(state):
        print(f"re-using the running local cluster in {state_dir}")
        print_summary(state)
        return 0
    if state is not None:
        cluster.stop_recorded(state)
    started = time.monotonic()
    local = cluster.LocalCluster(state_dir, node_count=node_count, refresh_tokens_in_process=False)
    local.start()
    local.start_token_refresher()
    print(f"local cluster up in {time.monotonic() - started:.1f}s ({state_dir})")
    print_summary(local.describe())
    return 0


def cluster_down(state_dir: Path) -> int:
    state = cluster.read_state(state_dir)
    if state is None:
        print(f"no local cluster recorded in {state_dir}")
        return 0
    stopped = cluster.stop_recorded(state)
    print(f"stopped {len(stopped)} process(es) of the local cluster in {state_dir}")
    return 0


def cluster_status(state_dir: Path) -> int:
    state = cluster.read_state(state_dir)
    if state is None or not cluster.running(state):
        print(f"no running local cluster in {state_dir}; start one with `make cluster-up`", file=sys.stderr)
        return 1
    print_summary(state)
    nodes = kubernetes.client.CoreV1Api(_client(state)).list_node().items
    print("\nNodes:")
    for node in nodes:
        ready = next((c.status for c in node.status.conditions or [] if c.type == "Ready"), "Unknown")
        print(f"  {node.metadata.name:12} Ready={ready:5} {node.metadata.labels}")
    return 0


def print_summary(state: dict[str, Any]) -> None:
    """Where everything is: kubeconfig, registries, each node's CRI socket. No secret values."""
    registries = state["registries"]
    auth = registries["auth"]
    print(f"\n  export KUBECONFIG={state['kubeconfig']}")
    print(f"\n  apiserver        {state['server']}")
    print(f"  open registry    {registries['open']['address']}  (docker.io mirror)")
    print(f"  auth registry    {auth['address']}  (htpasswd user {auth['username']!r}; password in cluster.json)")
    for node in state["nodes"]:
        print(f"  {node['name']:16} CRI unix://{node['cri_socket']}")
    print("\n  stop it with: make cluster-down")


def refresh_tokens(state_dir: Path) -> int:
    """Refresh every node's token files until SIGTERM: the kubelet's job on a real node."""
    state = cluster.read_state(state_dir)
    if state is None:
        print(f"no local cluster recorded in {state_dir}", file=sys.stderr)
        return 1
    api = _client(state)
    identities = [identity.NodeIdentity(api, state_dir=state_dir, node=node["name"]) for node in state["nodes"]]
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    for node_identity in identities:
        node_identity.start()
    stopping.wait()
    for node_identity in identities:
        node_identity.stop()
    return 0


def _client(state: dict[str, Any]) -> kubernetes.client.ApiClient:
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(config_file=state["kubeconfig"])
    return client


def _apiserver_answers(state: dict[str, Any]) -> bool:
    try:
        kubernetes.client.VersionApi(_client(state)).get_code(_request_timeout=5)
    except Exception:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
