"""Building the `ApiClient` every other module of this package talks through.

Two ways in, matching how our services run:

- `from_kubeconfig(path)`: the `--kubeconfig` flag every service has (design §2). An empty path means "in
  the cluster": the Pod's ServiceAccount token and CA, found the standard way (the client re-reads the
  token every minute, so kubelet's rotation is picked up).
- `from_token_file(server=, ca_file=, token_file=)`: an explicit server with a bearer token kept in a file,
  e.g. a projected, audience-bound ServiceAccount token. Such tokens expire and kubelet rewrites the file;
  we check the file's identity (inode, size, mtime) before every request and re-read it when it changed,
  so a rotated token is used at once and an unchanged one costs one `stat`.

The connection pool is sized for our thread model: each informer holds one long-lived watch connection and
every worker thread may have a request in flight, so the client's default (5 per CPU, 10 on our 2-core
test machines) would make urllib3 open and discard connections under load. Timeouts are not a property of
`ApiClient` in this client library (it takes them per call), so they live in `ClientSettings`, which
`kubeapi.KubeApi` applies to every request: no call can hang forever on a dead connection.

This module imports the client's submodules it uses, never the `kubernetes.config` package: with
`lightimport.install()` a service loads only those, and `kube_config` (with google.auth, oauthlib and yaml behind
it) only when a kubeconfig file is actually read; in a cluster the in-cluster config needs none of it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import kubernetes.client.api_client
import kubernetes.client.configuration
from kubernetes.config import incluster_config

ApiClient: TypeAlias = kubernetes.client.api_client.ApiClient
"""The official client's connection, as `from_kubeconfig` builds it and `kubeapi.KubeApi` wraps it. Named here
so modules outside this package can pass one around (and annotate it) without importing `kubernetes`."""


@dataclass(frozen=True)
class ClientSettings:
    """How we talk to the apiserver; defaults fit a service with a few informers and a few workers."""

    pool_maxsize: int = 32
    """Connections kept per host: one per watch plus one per concurrently working thread, with headroom."""

    connect_timeout: float = 5.0
    """Seconds to establish a TCP+TLS connection; the apiserver is local to the cluster network."""

    read_timeout: float = 30.0
    """Seconds to wait for an answer to a non-watch request; the apiserver's own limit is 60 s."""

    watch_read_slack: float = 30.0
    """Extra seconds beyond a watch's server-side `timeoutSeconds` before the client gives up reading: the
    server should close first, and a connection that stays silent longer than that is dead."""

    user_agent: str = "prepull"
    """Shown in apiserver audit logs and metrics; set it to the service name."""


def from_kubeconfig(path: str | os.PathLike[str] | None, *, settings: ClientSettings | None = None) -> ApiClient:
    """An `ApiClient` for a kubeconfig file, or for the in-cluster ServiceAccount when `path` is empty.

    Args:
        path: kubeconfig file (its current context is used); "" or None selects the in-cluster config.
        settings: pool size and user agent; defaults when None.

    Raises:
        kubernetes.config.ConfigException: the kubeconfig is unusable, or we are not in a cluster.
    """
    configuration = kubernetes.client.configuration.Configuration()
    if path:
        from kubernetes.config import kube_config  # noqa: PLC0415 -- only here: ~15 MiB of imports behind it

        kube_config.load_kube_config(
            config_file=os.fspath(path), client_configuration=configuration, persist_config=False
        )
    else:
        incluster_config.load_incluster_config(client_configuration=configuration)
    return _api_client(configuration, settings or ClientSettings())


def from_token_file(
    *,
    server: str,
    ca_file: str | os.PathLike[str],
    token_file: str | os.PathLike[str],
    settings: ClientSettings | None = None,
) -> ApiClient:
    """An `ApiClient` that authenticates with the bearer token in `token_file`, re-read when it changes.

    Args:
        server: the apiserver URL, e.g. "https://10.0.0.1:443".
        ca_file: PEM bundle that signed the apiserver's serving certificate.
        token_file: file holding the token; it may be replaced (rotation) at any time.
        settings: pool size and user agent; defaults when None.

    Raises:
        OSError: the token file cannot be read.
        ValueError: the token file is empty.
    """
    configuration = kubernetes.client.configuration.Configuration()
    configuration.host = server
    configuration.ssl_ca_cert = os.fspath(ca_file)
    token = TokenFile(Path(token_file))
    token.refresh(configuration)
    configuration.refresh_api_key_hook = token.refresh
    return _api_client(configuration, settings or ClientSettings())


class TokenFile:
    """A bearer token file that is re-read whenever its identity (inode, size, mtime) changes.

    Used as the client's `refresh_api_key_hook`, which it calls before every authenticated request, from
    whichever thread makes it; hence the lock. The token itself is never logged or put into an exception.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._identity: tuple[int, int, int] | None = None
        self._token = ""

    def refresh(self, configuration: kubernetes.client.configuration.Configuration) -> None:
        """Put the current token into `configuration.api_key`, reading the file only if it changed."""
        with self._lock:
            stat = os.stat(self._path)
            identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if identity != self._identity:
                self._token = self._read()
                self._identity = identity
            configuration.api_key["authorization"] = self._token
            configuration.api_key_prefix["authorization"] = "Bearer"

    def _read(self) -> str:
        token = self._path.read_text().strip()
        if not token:
            raise ValueError(f"token file {self._path} is empty")
        return token


def _api_client(configuration: kubernetes.client.configuration.Configuration, settings: ClientSettings) -> ApiClient:
    configuration.connection_pool_maxsize = settings.pool_maxsize
    api_client = ApiClient(configuration)
    api_client.user_agent = settings.user_agent
    return api_client
