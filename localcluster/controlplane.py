"""The local cluster's control plane: etcd, kube-apiserver and kube-controller-manager on loopback.

Built the envtest way (`/work/shared/testenv/recipe.md` §3-§4): each component is a child process we start
and stop by PID (`process.ManagedProcess`), on free loopback ports, with its state under one directory:

    <state_dir>/pki/             CA, serving and admin certificates, SA signing key, admin token (pki.py)
    <state_dir>/etcd/            etcd data (fsync off: the data is throwaway, the speed is not)
    <state_dir>/logs/<name>.log  each component's output, shown when a test fails
    <state_dir>/admin.kubeconfig admin client certificate (O=system:masters) and the admin token
    <state_dir>/ports.json       the ports, reused by the next plane on this directory (etcd data names them)

Authorization is RBAC, so the tests see the same 401/403 answers as a real cluster. The controller manager
runs only the garbage-collector, namespace and serviceaccount controllers: what objects need to be deleted
and namespaces to work, nothing that would schedule or run Pods.

Restarts are deliberate: ports and data directories are chosen once, so `restart_apiserver()` or
`stop_etcd()` ... `start_etcd()` bring back the same server URL, issuer, keys and objects. `to_state()` and
`from_state()` let another process (the CLI) re-attach to a running plane and stop it by its PIDs.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

import kubernetes.client
import yaml

from localcluster import binaries, pki
from localcluster.process import ManagedProcess, free_port, wait_until

ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
COMPONENTS = (ETCD, APISERVER, CONTROLLER_MANAGER)
# Garbage collection, namespace deletion, default ServiceAccounts, and aggregated ClusterRoles (view/edit pick up
# our roles through aggregation labels, as on a real cluster).
KCM_CONTROLLERS = (
    "garbage-collector-controller,namespace-controller,serviceaccount-controller,clusterrole-aggregation-controller"
)
# Generous: the machine has 2 cores and a Go build may be running next to us.
ETCD_READY_TIMEOUT = 60.0
APISERVER_READY_TIMEOUT = 180.0
CONTROLLER_MANAGER_READY_TIMEOUT = 120.0
KUBECTL_TIMEOUT = 120.0
PROBE_TIMEOUT = 5.0


class ComponentFailedError(RuntimeError):
    """A component exited or did not become ready; the message carries the tail of its log."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; unlike CalledProcessError, the message includes kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr}"


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one control plane; fixed for its lifetime so restarts keep the same URLs."""

    etcd_client: int
    etcd_peer: int
    apiserver: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(etcd_client=free_port(), etcd_peer=free_port(), apiserver=free_port())


class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) for one state directory.

    Args:
        state_dir: where PKI, etcd data, logs and the kubeconfig live; reused on restart.
        with_controller_manager: run kube-controller-manager (garbage collection, namespace deletion,
            default ServiceAccounts).
        ports: fixed ports, e.g. when re-attaching; free ones are picked when None.
    """

    def __init__(self, state_dir: Path, *, with_controller_manager: bool = True, ports: Ports | None = None) -> None:
        self.state_dir = state_dir.resolve()
        self.with_controller_manager = with_controller_manager
        self.ports = ports or _saved_ports(self._ports_file) or Ports.pick()
        self._pki = pki.ClusterPki(self.state_dir / "pki")
        self._bin_dir: Path | None = None
        self._processes: dict[str, ManagedProcess] = {}

    # --- what clients need -------------------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def service_account_issuer(self) -> str:
        return self.server

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.etcd_client}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self._pki.ca_cert

    @property
    def service_account_key(self) -> Path:
        return self._pki.service_account_key

    @property
    def admin_token(self) -> str:
        return self._pki.admin_token()

    @property
    def _ports_file(self) -> Path:
        return self.state_dir / "ports.json"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def api_client(self) -> kubernetes.client.ApiClient:
        """A client authenticated as the admin (client certificate, group system:masters)."""
        config = self._client_configuration()
        config.cert_file = str(self._pki.admin_cert)
        config.key_file = str(self._pki.admin_key)
        return kubernetes.client.ApiClient(config)

    def api_client_for_token(self, token: str) -> kubernetes.client.ApiClient:
        """A client that presents `token` as its bearer token (e.g. a ServiceAccount's)."""
        config = self._client_configuration()
        config.api_key = {"authorization": f"Bearer {token}"}
        return kubernetes.client.ApiClient(config)

    def http_status(self, path: str) -> int:
        """The HTTP status of an admin GET of `path` (e.g. `/readyz`); OSError when nothing answers."""
        request = urllib.request.Request(self.server + path, headers={"Authorization": f"Bearer {self.admin_token}"})
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(request, context=context, timeout=PROBE_TIMEOUT) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as error:
            error.close()  # an HTTPError holds its connection open until closed
            return error.code

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl as the admin; raise KubectlError (with stderr) on failure when `check`."""
        argv = [str(self._binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args]
        env = dict(os.environ) | {"KUBECACHEDIR": str(self.state_dir / "kubectl-cache")}
        result = subprocess.run(
            argv, check=False, input=input, capture_output=True, text=True, env=env, timeout=KUBECTL_TIMEOUT
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start etcd, then the apiserver (waiting until it is ready), then the controller manager.

        On any failure, whatever was started is stopped again before the error propagates.
        """
        try:
            self.start_etcd()
            self.start_apiserver()
            if self.with_controller_manager:
                self._start_controller_manager()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every component we started, dependents first; state (data, PKI, logs) stays on disk."""
        for name in reversed(COMPONENTS):
            self._stop(name)

    def stop_apiserver(self, *, kill: bool = False) -> None:
        """Stop the apiserver (SIGTERM, or SIGKILL to simulate a crash); etcd and the KCM keep running."""
        self._stop(APISERVER, kill=kill)

    def start_apiserver(self) -> None:
        """Start the apiserver on its fixed port and wait for /readyz and the `default` namespace."""
        self._prepare()
        process = self._process(APISERVER)
        process.start()
        self._await(
            process, self._apiserver_ready, timeout=APISERVER_READY_TIMEOUT, what="/readyz and namespace default"
        )

    def restart_apiserver(self) -> None:
        self.stop_apiserver()
        self.start_apiserver()

    def stop_etcd(self, *, kill: bool = False) -> None:
        """Stop etcd (SIGTERM, or SIGKILL to simulate a crash); the apiserver keeps running, unready.

        A graceful stop takes about 7 s while the apiserver holds connections (etcd's request timeout).
        """
        self._stop(ETCD, kill=kill)

    def start_etcd(self) -> None:
        """Start etcd on its fixed ports and data; when the apiserver runs, wait until it is ready again."""
        self._prepare()
        process = self._process(ETCD)
        process.start()
        self._await(process, self._etcd_healthy, timeout=ETCD_READY_TIMEOUT, what="etcd /health")
        apiserver = self._processes.get(APISERVER)
        if apiserver is not None and apiserver.alive():
            self._await(apiserver, self._apiserver_ready, timeout=APISERVER_READY_TIMEOUT, what="/readyz after etcd")

    def restart_etcd(self) -> None:
        self.stop_etcd()
        self.start_etcd()

    def alive(self, name: str) -> bool:
        """True while the named component (etcd, kube-apiserver, kube-controller-manager) runs."""
        process = self._processes.get(name)
        return process is not None and process.alive()

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every component's log, for test failure reports."""
        logs = [self.logs_dir / f"{name}.log" for name in COMPONENTS]
        return "\n".join(f"----- {log} -----\n{_tail(log, lines)}" for log in logs if log.exists())

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- re-attaching from another process -----------------------------------------------------------------

    def to_state(self) -> dict[str, object]:
        """JSON-able description (paths, ports, PIDs; no credentials) that `from_state` re-attaches to."""
        pids = {name: process.pid for name, process in self._processes.items() if process.alive()}
        return {
            "state_dir": str(self.state_dir),
            "with_controller_manager": self.with_controller_manager,
            "ports": asdict(self.ports),
            "pids": pids,
        }

    @classmethod
    def from_state(cls, state: dict[str, object]) -> ControlPlane:
        """Re-attach to a plane started elsewhere; PIDs that no longer run our binary are ignored."""
        ports = state["ports"]
        pids = state.get("pids", {})
        if not isinstance(ports, dict) or not isinstance(pids, dict):
            raise ValueError("malformed control plane state: ports and pids must be objects")
        plane = cls(
            Path(str(state["state_dir"])),
            with_controller_manager=bool(state.get("with_controller_manager", True)),
            ports=Ports(**{key: int(value) for key, value in ports.items()}),
        )
        for name, pid in pids.items():
            if name in COMPONENTS and isinstance(pid, int) and _runs_binary(pid, name):
                plane._process(name).pid = pid
        return plane

    # --- internals ---------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Binaries, PKI and kubeconfig: idempotent, so every start path can call it."""
        if self._bin_dir is None:
            self._bin_dir = binaries.ensure_binaries()
        pki.ensure_pki(self._pki.directory)
        (self.state_dir / "etcd").mkdir(mode=0o700, parents=True, exist_ok=True)
        self._ports_file.write_text(json.dumps(asdict(self.ports)))
        pki.write_private_file(self.kubeconfig, yaml.safe_dump(self._kubeconfig_document()).encode())

    def _binary(self, name: str) -> Path:
        if self._bin_dir is None:
            self._bin_dir = binaries.ensure_binaries()
        return self._bin_dir / name

    def _process(self, name: str) -> ManagedProcess:
        """The one ManagedProcess per component; argv uses the cache path even before binaries exist."""
        if name not in self._processes:
            directory = self._bin_dir or binaries.bin_dir()
            argv = [str(directory / name), *self._arguments(name)]
            self._processes[name] = ManagedProcess(name=name, argv=argv, log_path=self.logs_dir / f"{name}.log")
        return self._processes[name]

    def _stop(self, name: str, *, kill: bool = False) -> None:
        process = self._processes.get(name)
        if process is not None:
            process.stop(kill=kill)

    def _arguments(self, name: str) -> list[str]:
        return {
            ETCD: self._etcd_arguments,
            APISERVER: self._apiserver_arguments,
            CONTROLLER_MANAGER: self._kcm_arguments,
        }[name]()

    def _etcd_arguments(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        return [
            "--name=prepull",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=prepull={peer}",
            "--log-level=warn",
            "--unsafe-no-fsync=true",
            # etcd 3.6 spelling; progress notifications give the apiserver's watch cache its bookmarks.
            "--watch-progress-notify-interval=5s",
        ]

    def _apiserver_arguments(self) -> list[str]:
        files = self._pki
        return [
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports.apiserver}",
            f"--cert-dir={files.directory}",
            f"--tls-cert-file={files.apiserver_cert}",
            f"--tls-private-key-file={files.apiserver_key}",
            f"--client-ca-file={files.ca_cert}",
            f"--token-auth-file={files.token_file}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            f"--service-account-issuer={self.service_account_issuer}",
            f"--service-account-key-file={files.service_account_public_key}",
            f"--service-account-signing-key-file={files.service_account_key}",
            "--allow-privileged=true",
            # Pods are never run here; without this, a Pod created right after its namespace races the
            # serviceaccount controller for the `default` ServiceAccount (recipe §4.2).
            "--disable-admission-plugins=ServiceAccount",
            # Without it, the KCM's open watches hold a graceful stop for the full 60 s shutdown timeout.
            "--shutdown-watch-termination-grace-period=2s",
        ]

    def _kcm_arguments(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--controllers={KCM_CONTROLLERS}",
        ]

    def _start_controller_manager(self) -> None:
        """Start KCM; it counts as ready once its serviceaccount controller made `default/default`."""
        process = self._process(CONTROLLER_MANAGER)
        process.start()
        self._await(
            process,
            lambda: self.http_status("/api/v1/namespaces/default/serviceaccounts/default") == 200,
            timeout=CONTROLLER_MANAGER_READY_TIMEOUT,
            what="ServiceAccount default/default (made by kube-controller-manager)",
        )

    def _await(self, process: ManagedProcess, probe: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Wait for `probe`, failing fast (with the log tail) when the process exits first."""
        try:
            wait_until(lambda: not process.alive() or probe(), timeout=timeout, interval=0.2, what=what)
        except TimeoutError as exc:
            raise ComponentFailedError(f"{process.name}: {exc}\n{process.log_tail()}") from None
        if not process.alive():
            raise ComponentFailedError(f"{process.name} exited with {process.exited_with()}:\n{process.log_tail()}")

    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=PROBE_TIMEOUT) as response:
            return b'"health":"true"' in response.read()

    def _apiserver_ready(self) -> bool:
        """/readyz with credentials (anonymous access needs RBAC bootstrap first), then namespace default."""
        return self.http_status("/readyz") == 200 and self.http_status("/api/v1/namespaces/default") == 200

    def _client_configuration(self) -> kubernetes.client.Configuration:
        config = kubernetes.client.Configuration()
        config.host = self.server
        config.ssl_ca_cert = str(self.ca_file)
        return config

    def _kubeconfig_document(self) -> dict[str, object]:
        files = self._pki
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "prepull-local",
            "clusters": [
                {
                    "name": "prepull-local",
                    "cluster": {"server": self.server, "certificate-authority-data": _b64(files.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate-data": _b64(files.admin_cert),
                        "client-key-data": _b64(files.admin_key),
                    },
                },
                {"name": "admin-token", "user": {"token": files.admin_token()}},
            ],
            "contexts": [
                {"name": "prepull-local", "context": {"cluster": "prepull-local", "user": "admin"}},
                {"name": "prepull-local-token", "context": {"cluster": "prepull-local", "user": "admin-token"}},
            ],
        }


def _saved_ports(path: Path) -> Ports | None:
    """The ports an earlier plane used for this state directory: its etcd data and kubeconfig name them."""
    try:
        return Ports(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _tail(path: Path, lines: int) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _runs_binary(pid: int, name: str) -> bool:
    """True when `pid` still runs the component binary `name` (guards against PID reuse on re-attach)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return Path(os.fsdecode(argv0)).name == name
