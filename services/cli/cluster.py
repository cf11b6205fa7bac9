"""Which cluster and namespace the CLI talks to, chosen the way kubectl chooses them.

`--kubeconfig` wins; else the first file in `$KUBECONFIG`; else `~/.kube/config` when it exists; else the
in-cluster ServiceAccount (the CLI run from a Pod). The namespace is `-n` when given, else the current
context's namespace, else `default`. Only the first file of a `$KUBECONFIG` list is read: the official client
loads one file, and merging is kubectl's business, not ours.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import kubernetes.config

from services.shared.kube import client, kubeapi

DEFAULT_NAMESPACE = "default"
USER_AGENT = "prepull-cli"


def kubeconfig_path(flag: str | None, environ: Mapping[str, str], home: Path) -> str:
    """The kubeconfig file to use; "" means the in-cluster configuration."""
    if flag:
        return flag
    listed = [p for p in environ.get("KUBECONFIG", "").split(":") if p]
    if listed:
        return listed[0]
    default = home / ".kube" / "config"
    return str(default) if default.is_file() else ""


def context_namespace(path: str) -> str:
    """The current context's namespace in the kubeconfig at `path`; `default` when unset or in-cluster."""
    if not path:
        return DEFAULT_NAMESPACE
    try:
        _, current = kubernetes.config.list_kube_config_contexts(config_file=path)
    except (kubernetes.config.ConfigException, OSError):
        return DEFAULT_NAMESPACE
    namespace = ((current or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else DEFAULT_NAMESPACE


@contextlib.contextmanager
def connect(path: str) -> Iterator[kubeapi.KubeApi]:
    """A `KubeApi` for the kubeconfig at `path` ("" for in-cluster), its connections closed on exit.

    Raises:
        kubernetes.config.ConfigException: the configuration is unusable.
    """
    settings = client.ClientSettings(user_agent=USER_AGENT, pool_maxsize=2)
    with client.from_kubeconfig(path, settings=settings) as api_client:
        yield kubeapi.KubeApi(api_client, settings=settings)
