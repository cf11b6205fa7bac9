"""The informer against the real apiserver: selectors, store contents, handlers, and re-listing after 410 Gone.

Restarting the apiserver lives in its own module (`test_kube_informer_restart.py`), because it disturbs
every other test of the session while it happens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localcluster.controlplane import ControlPlane
from localcluster.process import wait_until
from services.shared.kube import backoff, client, errors, informer, kubeapi, resources, watching

pytestmark = pytest.mark.integration

CM = resources.CONFIG_MAPS
WAIT = 30.0

GADGETS = resources.Resource("kubetest.prepull.test", "v1", "gadgets", "Gadget", True)
GADGET_CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {GADGETS.plural}.{GADGETS.group}
spec:
  group: {GADGETS.group}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"""
"""A throwaway CRD, not ours: its watch cache starts when it is established, so any older resourceVersion
is genuinely expired there and the apiserver answers a watch from it with a real 410."""


@pytest.fixture
def start_informer(kube_api) -> Iterator[Callable[..., informer.Informer[Any]]]:
    started: list[informer.Informer[Any]] = []

    def start(*, api=None, handlers: informer.Handlers[Any], **kwargs) -> informer.Informer[Any]:
        watcher = informer.Informer(api or kube_api, kwargs.pop("resource", CM), **kwargs)
        watcher.add_handlers(handlers)
        watcher.start()
        started.append(watcher)
        assert watcher.wait_for_sync(WAIT)
        return watcher

    yield start
    for watcher in started:
        watcher.stop()


def config_map(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"v": "1"}}


def names(watcher: informer.Informer[Any]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in watcher.store.list())


def test_label_selector_sees_adds_updates_and_deletes(kube_api, kube_namespace, start_informer, handler_log):
    kube_api.create(CM, config_map("before", app="watched"), namespace=kube_namespace)
    kube_api.create(CM, config_map("ignored", app="other"), namespace=kube_namespace)
    watcher = start_informer(namespace=kube_namespace, label_selector="app=watched", handlers=handler_log.handlers())
    assert names(watcher) == ["before"]
    assert handler_log.events == [("add", "before")]

    kube_api.create(CM, config_map("after", app="watched"), namespace=kube_namespace)
    kube_api.patch(CM, "before", {"data": {"v": "2"}}, namespace=kube_namespace)
    kube_api.patch(CM, "ignored", {"metadata": {"labels": {"app": "watched"}}}, namespace=kube_namespace)
    kube_api.patch(CM, "after", {"metadata": {"labels": {"app": "elsewhere"}}}, namespace=kube_namespace)
    kube_api.delete(CM, "before", namespace=kube_namespace)

    expected = [("add", "after"), ("update", "before"), ("add", "ignored"), ("delete", "after"), ("delete", "before")]
    wait_until(lambda: handler_log.events[1:] == expected, timeout=WAIT, what=f"{expected}, got {handler_log.events}")
    assert names(watcher) == ["ignored"]
    old, new = handler_log.updates[0]
    assert (old["data"], new["data"]) == ({"v": "1"}, {"v": "2"})
    assert watcher.store.get(f"{kube_namespace}/ignored")["metadata"]["labels"] == {"app": "watched"}


def test_field_selector_watches_one_object_by_name(kube_api, kube_namespace, start_informer, handler_log):
    watcher = start_informer(
        namespace=kube_namespace, field_selector="metadata.name=target", handlers=handler_log.handlers()
    )
    kube_api.create(CM, config_map("other"), namespace=kube_namespace)
    kube_api.create(CM, config_map("target"), namespace=kube_namespace)
    kube_api.patch(CM, "other", {"data": {"v": "2"}}, namespace=kube_namespace)
    kube_api.patch(CM, "target", {"data": {"v": "2"}}, namespace=kube_namespace)
    kube_api.delete(CM, "target", namespace=kube_namespace)
    expected = [("add", "target"), ("update", "target"), ("delete", "target")]
    wait_until(lambda: handler_log.events == expected, timeout=WAIT, what=f"{expected}, got {handler_log.events}")
    assert names(watcher) == []


def test_stop_ends_an_open_watch_at_once(kube_api, kube_namespace, start_informer, handler_log):
    watcher = start_informer(namespace=kube_namespace, handlers=handler_log.handlers())
    kube_api.create(CM, config_map("probe"), namespace=kube_namespace)
    wait_until(lambda: ("add", "probe") in handler_log.events, timeout=WAIT, what="the watch to deliver")
    started = time.monotonic()
    watcher.stop(timeout=10.0)
    assert time.monotonic() - started < 5.0  # not the watch's minutes-long server timeout
    assert not [t for t in threading.enumerate() if t.name == repr(watcher)]


@pytest.fixture(scope="module")
def gadget_crd(control_plane: ControlPlane) -> Iterator[resources.Resource]:
    crd = f"crd/{GADGETS.plural}.{GADGETS.group}"
    control_plane.kubectl("apply", "-f", "-", input=GADGET_CRD)
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", crd)
    yield GADGETS
    control_plane.kubectl("delete", crd, "--wait=false")


class ExpiredFirstWatch(kubeapi.KubeApi):
    """Our real client, except that the first watch starts from resourceVersion 1, long expired.

    Just before that watch, `gap` runs: changes made there happen after the informer's list and before
    its watch, so only a re-list can reveal them.
    """

    def __init__(self, api_client, gap) -> None:
        super().__init__(api_client)
        self._gap = gap
        self.watched_from: list[str | None] = []

    def watch(self, resource, **kwargs) -> watching.WatchStream:
        if not self.watched_from:
            self._gap()
            kwargs["resource_version"] = "1"
        self.watched_from.append(kwargs.get("resource_version"))
        return super().watch(resource, **kwargs)


def test_a_410_on_the_watch_relists_and_delivers_what_changed_in_the_gap(
    control_plane, kube_api, kube_namespace, gadget_crd, start_informer, handler_log
):
    def gadget(name: str) -> dict[str, Any]:
        return {"apiVersion": "kubetest.prepull.test/v1", "kind": "Gadget", "metadata": {"name": name}, "size": 1}

    for name in ("kept", "changed", "deleted"):
        kube_api.create(gadget_crd, gadget(name), namespace=kube_namespace)

    def gap() -> None:
        kube_api.delete(gadget_crd, "deleted", namespace=kube_namespace)
        kube_api.patch(gadget_crd, "changed", {"size": 2}, namespace=kube_namespace)
        kube_api.create(gadget_crd, gadget("new"), namespace=kube_namespace)

    kube_api_client = client.from_kubeconfig(control_plane.kubeconfig)
    with pytest.raises(errors.Gone):  # the premise: the apiserver really refuses resourceVersion 1 here
        list(kube_api.watch(gadget_crd, namespace=kube_namespace, resource_version="1", timeout_seconds=5))

    api = ExpiredFirstWatch(kube_api_client, gap)
    watcher = start_informer(api=api, resource=gadget_crd, namespace=kube_namespace, handlers=handler_log.handlers())
    wait_until(lambda: watcher.relists >= 2, timeout=WAIT, what="a re-list after the 410")
    wait_until(lambda: len(handler_log.events) >= 6, timeout=WAIT, what=f"gap changes, got {handler_log.events}")

    initial, after_gap = handler_log.events[:3], handler_log.events[3:]
    assert sorted(initial) == [("add", "changed"), ("add", "deleted"), ("add", "kept")]
    assert sorted(after_gap) == [("add", "new"), ("delete", "deleted"), ("update", "changed")]
    assert names(watcher) == ["changed", "kept", "new"]
    assert api.watched_from[0] == "1" and api.watched_from[1] not in (None, "1")

    kube_api.create(gadget_crd, gadget("later"), namespace=kube_namespace)  # and the new watch works
    wait_until(lambda: ("add", "later") in handler_log.events, timeout=WAIT, what="a change after the re-list")
    watcher.stop()
    kube_api_client.close()


class AlwaysExpiredWatch(kubeapi.KubeApi):
    """Our real client, except that every watch starts from resourceVersion 1: a server that keeps answering 410."""

    def __init__(self, api_client) -> None:
        super().__init__(api_client)
        self.watches = 0

    def watch(self, resource, **kwargs) -> watching.WatchStream:
        self.watches += 1
        kwargs["resource_version"] = "1"
        return super().watch(resource, **kwargs)


HOUR_BACKOFF = informer.InformerSettings(backoff=backoff.BackoffPolicy(initial=3600.0, cap=3600.0, jitter=0.0))
"""Any back-off wait would outlast the test: what happens within it happened without waiting."""


def gadget(name: str) -> dict[str, Any]:
    return {"apiVersion": "kubetest.prepull.test/v1", "kind": "Gadget", "metadata": {"name": name}, "size": 1}


def test_a_first_410_relists_without_waiting_the_backoff(
    control_plane, kube_api, kube_namespace, gadget_crd, start_informer, handler_log
):
    kube_api.create(gadget_crd, gadget("before"), namespace=kube_namespace)
    kube_api_client = client.from_kubeconfig(control_plane.kubeconfig)
    api = ExpiredFirstWatch(
        kube_api_client, lambda: kube_api.create(gadget_crd, gadget("gap"), namespace=kube_namespace)
    )

    watcher = start_informer(
        api=api,
        resource=gadget_crd,
        namespace=kube_namespace,
        handlers=handler_log.handlers(),
        settings=HOUR_BACKOFF,
    )

    wait_until(lambda: ("add", "gap") in handler_log.events, timeout=WAIT, what="the re-list right after the 410")
    assert watcher.relists == 2
    watcher.stop()
    kube_api_client.close()


def test_a_410_after_a_410_waits_the_backoff(control_plane, kube_namespace, gadget_crd, start_informer, handler_log):
    kube_api_client = client.from_kubeconfig(control_plane.kubeconfig)
    api = AlwaysExpiredWatch(kube_api_client)

    watcher = start_informer(
        api=api,
        resource=gadget_crd,
        namespace=kube_namespace,
        handlers=handler_log.handlers(),
        settings=HOUR_BACKOFF,
    )

    wait_until(lambda: api.watches >= 2, timeout=WAIT, what="the second watch, after the immediate re-list")
    time.sleep(2.0)  # a server answering 410 again is not hammered: no third attempt inside the back-off
    assert (watcher.relists, api.watches) == (2, 2)
    watcher.stop()
    kube_api_client.close()


def test_cached_objects_carry_no_managed_fields(kube_api, kube_namespace, start_informer, handler_log):
    listed = kube_api.create(CM, config_map("listed"), namespace=kube_namespace)
    assert listed["metadata"].get("managedFields"), "the premise: the apiserver records field ownership"
    watcher = start_informer(namespace=kube_namespace, handlers=handler_log.handlers())
    kube_api.create(CM, config_map("watched"), namespace=kube_namespace)
    kube_api.patch(CM, "listed", {"data": {"v": "2"}}, namespace=kube_namespace)

    wait_until(lambda: len(handler_log.events) == 3, timeout=WAIT, what=f"add, add, update; got {handler_log.events}")
    cached = [watcher.store.get(f"{kube_namespace}/{name}") for name in ("listed", "watched")]
    delivered = [new for _, new in handler_log.updates]
    assert [o["metadata"].get("managedFields") for o in cached + delivered] == [None, None, None]
    assert cached[0]["data"] == {"v": "2"}
