"""Fixtures for the integration tests of services.shared.kube: our client against the session's real apiserver."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from localcluster.controlplane import ControlPlane
from services.shared.kube import client, informer, kubeapi, objects

RawObject = objects.RawObject


@pytest.fixture
def kube_api(control_plane: ControlPlane) -> Iterator[kubeapi.KubeApi]:
    """Our `KubeApi`, built from the admin kubeconfig the way a service builds it from `--kubeconfig`."""
    api_client = client.from_kubeconfig(
        control_plane.kubeconfig, settings=client.ClientSettings(user_agent="prepull-tests")
    )
    with api_client:
        yield kubeapi.KubeApi(api_client)


class HandlerLog:
    """Informer handlers that record what they were told, as ("add"|"update"|"delete", name) tuples."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[str, str]] = []
        self.updates: list[tuple[RawObject, RawObject]] = []

    @property
    def events(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._events)

    def handlers(self) -> informer.Handlers[RawObject]:
        return informer.Handlers(on_add=self._on_add, on_update=self._on_update, on_delete=self._on_delete)

    def _on_add(self, obj: RawObject) -> None:
        self._record("add", obj)

    def _on_update(self, old: RawObject, new: RawObject) -> None:
        with self._lock:
            self.updates.append((old, new))
        self._record("update", new)

    def _on_delete(self, obj: RawObject) -> None:
        self._record("delete", obj)

    def _record(self, what: str, obj: RawObject) -> None:
        with self._lock:
            self._events.append((what, obj["metadata"]["name"]))


@pytest.fixture
def handler_log() -> HandlerLog:
    return HandlerLog()
