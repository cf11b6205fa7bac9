"""One Debian containerd per simulated node: its own root, state, sockets and registry hosts.

The puller talks to a node's runtime only through CRI over a unix socket, exactly as on a real node. Several
`ContainerdNode`s run side by side, so nothing may be shared between them: each has its own `root`, `state`,
gRPC and ttrpc sockets, `opt` directory and CNI config directory; the debug socket, metrics and TCP listeners
are off, and the CRI streaming server binds port 0 (the kernel picks). Images are unpacked with the `native`
snapshotter, which needs no overlayfs.

Registries are reached through containerd's registry host directory (`config_path`): one
`<host:port>/hosts.toml` per loopback registry, saying plain HTTP, and a `docker.io/hosts.toml` that tries a local
registry first, so `ubuntu:latest` resolves with no internet. containerd reads that directory on every pull, so
registries can be added while the node runs.

Unix socket paths are limited to 107 bytes; keep `base_dir` short (e.g. `/tmp/pp-xxxx/node-a`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import grpc

from localcluster.process import ManagedProcess, wait_until
from services.shared.gen.cri import api_pb2, api_pb2_grpc

CONTAINERD_BINARY = "containerd"
UNIX_PATH_MAX = 107
DOCKER_HUB = "docker.io"
DOCKER_HUB_UPSTREAM = "https://registry-1.docker.io"
CRI_PLUGIN = "io.containerd.grpc.v1.cri"
# Snapshotters that only log errors here (no btrfs/zfs pools, no devmapper) and that we do not use.
UNUSED_PLUGINS = (
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
)


class ContainerdNode:
    """A containerd process standing in for one node's container runtime.

    Args:
        name: The node's name (e.g. "node-a"); used in logs and error messages.
        base_dir: Directory holding everything of this instance; keep it short (socket path limit).
        registries: `host:port` of loopback registries this node pulls from over plain HTTP.
        docker_io_mirror: `host:port` of a registry to try first for every `docker.io/...` image.
    """

    def __init__(
        self,
        name: str,
        base_dir: Path,
        *,
        registries: Iterable[str] = (),
        docker_io_mirror: str | None = None,
    ) -> None:
        self.name = name
        self.base_dir = base_dir
        self.root = base_dir / "root"
        self.state = base_dir / "state"
        self.hosts_dir = base_dir / "certs.d"
        self.config_path = base_dir / "config.toml"
        self.socket = base_dir / "containerd.sock"
        self._registries = list(registries)
        self._docker_io_mirror = docker_io_mirror
        if len(str(self.socket)) + len(".ttrpc") > UNIX_PATH_MAX:
            raise ValueError(f"base dir too long for a unix socket: {self.socket}")
        self.process = ManagedProcess(
            name=f"containerd-{name}",
            argv=[self._binary(), "--config", str(self.config_path)],
            log_path=base_dir / "containerd.log",
        )

    @property
    def cri_target(self) -> str:
        """The gRPC target of the node's CRI endpoint (`unix:///…/containerd.sock`)."""
        return f"unix://{self.socket}"

    def start(self, *, timeout: float = 60.0) -> None:
        """Write the config and registry hosts, start containerd, and wait until CRI `Version` answers."""
        for directory in (self.root, self.state, self.hosts_dir, self.base_dir / "cni"):
            directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config_toml())
        for address in self._registries:
            self.trust_registry(address)
        if self._docker_io_mirror is not None:
            self.mirror_docker_io(self._docker_io_mirror)
        self.process.start()
        wait_until(self._ready_or_exited, timeout=timeout, what=f"CRI Version on {self.name}")
        if not self.process.alive():
            raise RuntimeError(f"containerd {self.name} exited at start:\n{self.log_tail(15)}")

    def stop(self) -> None:
        """Stop containerd; root and state stay, so `start` comes back with the same images."""
        self.process.stop()

    def restart(self, *, timeout: float = 60.0) -> None:
        """Stop and start on the same data and socket."""
        self.stop()
        self.start(timeout=timeout)

    def trust_registry(self, address: str) -> None:
        """Let this node pull from the registry at `host:port` over plain HTTP (effective at the next pull)."""
        server = f"http://{address}"
        self._write_hosts(address, server=server, hosts=[server])

    def mirror_docker_io(self, address: str) -> None:
        """Resolve `docker.io/...` images at the registry `host:port` first, Docker Hub after."""
        self._docker_io_mirror = address
        self._write_hosts(DOCKER_HUB, server=DOCKER_HUB_UPSTREAM, hosts=[f"http://{address}"])

    def version(self, *, timeout: float = 5.0) -> api_pb2.VersionResponse:
        """CRI `RuntimeService.Version` over the node's socket."""
        with grpc.insecure_channel(self.cri_target) as channel:
            stub = api_pb2_grpc.RuntimeServiceStub(channel)
            response: api_pb2.VersionResponse = stub.Version(api_pb2.VersionRequest(version="v1"), timeout=timeout)
            return response

    def log_tail(self, lines: int = 40) -> str:
        """The end of containerd's log, for failure reports."""
        return self.process.log_tail(lines)

    def _ready_or_exited(self) -> bool:
        """Stop waiting when containerd exited, or when it answers CRI `Version` (the CRI plugin serves)."""
        if not self.process.alive():
            return True
        return self.socket.exists() and self.version(timeout=2).runtime_api_version == "v1"

    def _write_hosts(self, namespace: str, *, server: str, hosts: list[str]) -> None:
        """Write `<config_path>/<namespace>/hosts.toml`: the upstream `server` and the hosts tried before it."""
        lines = [f'server = "{server}"', ""]
        for host in hosts:
            lines += [f'[host."{host}"]', '  capabilities = ["pull", "resolve"]', ""]
        directory = self.hosts_dir / namespace
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts.toml").write_text("\n".join(lines))

    def _config_toml(self) -> str:
        """containerd config (TOML version 2) with every path and listener private to this instance."""
        disabled = ", ".join(f'"{plugin}"' for plugin in UNUSED_PLUGINS)
        return f"""\
version = 2
root = "{self.root}"
state = "{self.state}"
disabled_plugins = [{disabled}]
required_plugins = ["{CRI_PLUGIN}"]

[grpc]
  address = "{self.socket}"
  tcp_address = ""

[ttrpc]
  address = "{self.socket}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{self.base_dir / "opt"}"

[plugins."{CRI_PLUGIN}"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

[plugins."{CRI_PLUGIN}".containerd]
  snapshotter = "native"

[plugins."{CRI_PLUGIN}".cni]
  conf_dir = "{self.base_dir / "cni"}"

[plugins."{CRI_PLUGIN}".registry]
  config_path = "{self.hosts_dir}"
"""

    @staticmethod
    def _binary() -> str:
        """containerd from Debian's `containerd` package."""
        path = shutil.which(CONTAINERD_BINARY)
        if path is None:
            raise FileNotFoundError(f"{CONTAINERD_BINARY} not found: install Debian's containerd package")
        return path
