"""An informer survives an apiserver restart on its own and sees what changed afterwards.

In its own module because `restart_apiserver()` takes the apiserver away from every test of the session
while it happens; the informer must neither be restarted by us nor lose changes.
"""

from __future__ import annotations

import pytest

from localcluster.controlplane import ControlPlane
from localcluster.process import wait_until
from services.shared.kube import backoff, errors, informer, resources

pytestmark = pytest.mark.integration

CM = resources.CONFIG_MAPS
WAIT = 60.0
QUICK_RECONNECT = informer.InformerSettings(backoff=backoff.BackoffPolicy(initial=0.2, factor=2.0, cap=2.0, jitter=0.2))


def retrying(action, what: str):
    """Run a write until the freshly restarted apiserver accepts it (its first answers may be 5xx)."""
    result = []

    def attempt() -> bool:
        try:
            result.append(action())
        except (errors.TransportError, errors.ServerError, errors.TooManyRequests):
            return False
        return True

    wait_until(attempt, timeout=WAIT, what=what)
    return result[0]


def test_informer_recovers_from_an_apiserver_restart(
    control_plane: ControlPlane, kube_api, kube_namespace, handler_log
):
    for name in ("survivor", "doomed"):
        kube_api.create(CM, {"metadata": {"name": name}, "data": {"v": "1"}}, namespace=kube_namespace)
    watcher = informer.Informer(kube_api, CM, namespace=kube_namespace, settings=QUICK_RECONNECT)
    watcher.add_handlers(handler_log.handlers())
    watcher.start()
    try:
        assert watcher.wait_for_sync(WAIT)
        wait_until(lambda: len(handler_log.events) == 2, timeout=WAIT, what="the initial adds")

        control_plane.restart_apiserver()

        retrying(lambda: kube_api.patch(CM, "survivor", {"data": {"v": "2"}}, namespace=kube_namespace), "patch")
        retrying(lambda: kube_api.create(CM, {"metadata": {"name": "newcomer"}}, namespace=kube_namespace), "create")
        retrying(lambda: kube_api.delete(CM, "doomed", namespace=kube_namespace), "delete")

        def caught_up() -> bool:
            survivor = watcher.store.get(f"{kube_namespace}/survivor")
            return (
                sorted(watcher.store.keys()) == [f"{kube_namespace}/newcomer", f"{kube_namespace}/survivor"]
                and survivor is not None
                and survivor["data"] == {"v": "2"}
            )

        wait_until(caught_up, timeout=WAIT, what=f"the informer to catch up, saw {handler_log.events}")
        later = handler_log.events[2:]
        assert ("add", "newcomer") in later
        assert ("update", "survivor") in later
        assert ("delete", "doomed") in later
        assert watcher.has_synced()
    finally:
        watcher.stop()
