"""Informer logic against a scripted list/watch source: resume, re-list on 410, back-off, handler isolation.

The same behaviours run against the real apiserver in tests/integration/shared; here each path is forced
deterministically, including ones a real server produces only by chance.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from localcluster.process import wait_until
from services.shared.kube import backoff, errors, informer, objects, resources, watching

pytestmark = pytest.mark.timeout(20)

FAST = informer.InformerSettings(backoff=backoff.BackoffPolicy(initial=0.01, factor=1.0, cap=0.01, jitter=0.0))
WAIT = 5.0


def cm(name: str, rv: str, **data: str) -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}, "data": data}


def event(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


def bookmark(rv: str) -> bytes:
    return event("BOOKMARK", {"kind": "ConfigMap", "metadata": {"resourceVersion": rv}})


def expired(rv: str) -> bytes:
    return event("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": f"too old: {rv}"})


class EndedResponse:
    """A watch response that yields its bytes and then ends, as when the server's timeout passes."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Any:
        yield self._data

    def shutdown(self) -> None:
        pass

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class ScriptedApi:
    """Answers list and watch calls from scripts; an exhausted script looks like an unreachable server."""

    def __init__(self) -> None:
        self.lists: queue.Queue[objects.ObjectList | Exception] = queue.Queue()
        self.watches: queue.Queue[bytes | Exception] = queue.Queue()
        self.watched_from: list[str | None] = []
        self.watched_at: list[float] = []
        self.page_sizes: list[int | None] = []

    def list_pages(self, resource: resources.Resource, **kwargs: Any) -> Iterator[objects.ObjectList]:
        self.page_sizes.append(kwargs.get("page_size"))
        answer: objects.ObjectList = _answer(self.lists)
        yield answer

    def watch(self, resource: resources.Resource, **kwargs: Any) -> watching.WatchStream:
        self.watched_from.append(kwargs["resource_version"])
        self.watched_at.append(time.monotonic())
        return watching.WatchStream(EndedResponse(_answer(self.watches)))


def _answer(script: queue.Queue[Any]) -> Any:
    try:
        answer = script.get(timeout=0.05)
    except queue.Empty:
        raise errors.TransportError("connection refused") from None
    if isinstance(answer, Exception):
        raise answer
    return answer


class Log:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, str]] = []

    def handlers(self) -> informer.Handlers[dict[str, Any]]:
        return informer.Handlers(
            on_add=lambda o: self._add("add", o),
            on_update=lambda old, new: self._add("update", new),
            on_delete=lambda o: self._add("delete", o),
        )

    def _add(self, what: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((what, obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

    def snapshot(self) -> list[tuple[str, str, str]]:
        with self.lock:
            return list(self.events)


@pytest.fixture
def run():
    started: list[informer.Informer[dict[str, Any]]] = []

    def start(
        api: ScriptedApi, log: Log, settings: informer.InformerSettings = FAST
    ) -> informer.Informer[dict[str, Any]]:
        watcher = informer.Informer(api, resources.CONFIG_MAPS, namespace="ns", settings=settings)
        watcher.add_handlers(log.handlers())
        watcher.start()
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        watcher.stop()


def test_watch_resumes_from_the_last_event_or_bookmark(run):
    api, log = ScriptedApi(), Log()
    api.lists.put(objects.ObjectList([cm("a", "5")], "5"))
    api.watches.put(event("ADDED", cm("b", "6")) + event("MODIFIED", cm("a", "7")) + event("DELETED", cm("b", "8")))
    api.watches.put(bookmark("20"))
    watcher = run(api, log)
    wait_until(lambda: api.watched_from[:3] == ["5", "8", "20"], timeout=WAIT, what=f"resumes, got {api.watched_from}")
    assert log.snapshot() == [("add", "a", "5"), ("add", "b", "6"), ("update", "a", "7"), ("delete", "b", "8")]
    assert watcher.relists == 1
    assert watcher.store.keys() == ["ns/a"]


def test_an_expired_resource_version_relists_and_delivers_the_difference(run):
    api, log = ScriptedApi(), Log()
    api.lists.put(objects.ObjectList([cm("kept", "1"), cm("changed", "2"), cm("gone", "3")], "3"))
    api.watches.put(expired("3"))
    api.lists.put(objects.ObjectList([cm("kept", "1"), cm("changed", "9"), cm("new", "10")], "10"))
    watcher = run(api, log)
    wait_until(lambda: watcher.relists == 2 and "10" in api.watched_from, timeout=WAIT, what="a re-list")
    assert sorted(log.snapshot()[3:]) == [("add", "new", "10"), ("delete", "gone", "3"), ("update", "changed", "9")]
    assert api.watched_from[:2] == ["3", "10"]


def test_a_gone_answer_to_the_watch_request_relists_too(run):
    api, log = ScriptedApi(), Log()
    api.lists.put(objects.ObjectList([], "3"))
    api.watches.put(errors.Gone("too old", code=410, reason="Expired"))
    api.lists.put(objects.ObjectList([cm("a", "4")], "4"))
    watcher = run(api, log)
    wait_until(lambda: watcher.relists == 2, timeout=WAIT, what="a re-list")
    wait_until(lambda: log.snapshot() == [("add", "a", "4")], timeout=WAIT, what="the add")


def test_connection_failures_rewatch_from_the_same_version_without_listing(run):
    api, log = ScriptedApi(), Log()
    api.lists.put(objects.ObjectList([cm("a", "5")], "5"))
    for _ in range(3):
        api.watches.put(errors.ServerError("etcd unavailable", code=503))
    api.watches.put(event("MODIFIED", cm("a", "6")))
    watcher = run(api, log)
    wait_until(lambda: ("update", "a", "6") in log.snapshot(), timeout=WAIT, what="the update after retries")
    assert api.watched_from[:4] == ["5", "5", "5", "5"]
    assert watcher.relists == 1


def test_a_failing_list_is_retried_until_it_succeeds(run):
    api, log = ScriptedApi(), Log()
    api.lists.put(errors.TooManyRequests("slow down", code=429))
    api.lists.put(objects.ObjectList([cm("a", "1")], "1"))
    watcher = run(api, log)
    assert watcher.wait_for_sync(WAIT)
    assert log.snapshot() == [("add", "a", "1")]


def test_a_failing_handler_does_not_stop_the_others_or_the_informer(run):
    api, log = ScriptedApi(), Log()
    api.lists.put(objects.ObjectList([cm("a", "1")], "1"))
    api.watches.put(event("ADDED", cm("b", "2")))
    watcher = informer.Informer(api, resources.CONFIG_MAPS, namespace="ns", settings=FAST)

    def explode(obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    watcher.add_handlers(informer.Handlers(on_add=explode))
    watcher.add_handlers(log.handlers())
    watcher.start()
    try:
        wait_until(lambda: [e[1] for e in log.snapshot()] == ["a", "b"], timeout=WAIT, what="both adds")
    finally:
        watcher.stop()


def test_handlers_added_after_start_hear_about_existing_objects(run):
    api, late = ScriptedApi(), Log()
    api.lists.put(objects.ObjectList([cm("a", "1")], "1"))
    watcher = run(api, Log())
    assert watcher.wait_for_sync(WAIT)
    watcher.add_handlers(late.handlers())
    assert late.snapshot() == [("add", "a", "1")]


def test_resync_is_off_by_default_and_redelivers_when_set(run):
    api, log = ScriptedApi(), Log()
    api.lists.put(objects.ObjectList([cm("a", "1")], "1"))
    assert informer.InformerSettings().resync_interval is None
    run(api, log, informer.InformerSettings(backoff=FAST.backoff, resync_interval=0.05))
    wait_until(lambda: log.snapshot().count(("update", "a", "1")) >= 2, timeout=WAIT, what="resync updates")


def test_a_watch_that_ends_at_once_without_events_backs_off_instead_of_spinning(run):
    api, log = ScriptedApi(), Log()
    api.lists.put(objects.ObjectList([], "1"))
    api.watches.put(b"")
    api.watches.put(b"")
    slow = informer.InformerSettings(backoff=backoff.BackoffPolicy(initial=0.3, factor=1.0, cap=0.3, jitter=0.0))
    run(api, log, slow)
    wait_until(lambda: len(api.watched_at) >= 3, timeout=WAIT, what="three watch attempts")
    gaps = [later - earlier for earlier, later in zip(api.watched_at, api.watched_at[1:], strict=False)]
    assert all(gap >= 0.29 for gap in gaps[:2])


def test_the_first_answer_after_an_outage_restarts_the_back_off(run):
    api, log = ScriptedApi(), Log()
    api.lists.put(objects.ObjectList([], "1"))
    for _ in range(5):
        api.watches.put(errors.TransportError("connection refused"))
    api.watches.put(errors.Forbidden("RBAC not ready", code=403))
    api.watches.put(event("ADDED", cm("a", "2")))
    growing = informer.InformerSettings(backoff=backoff.BackoffPolicy(initial=0.05, factor=2.0, cap=10.0, jitter=0.0))
    run(api, log, growing)
    wait_until(lambda: ("add", "a", "2") in log.snapshot(), timeout=WAIT, what="the event after the outage")
    gaps = [later - earlier for earlier, later in zip(api.watched_at, api.watched_at[1:], strict=False)]
    assert gaps[4] >= 0.75  # five refusals grew the wait to 0.8 s before the apiserver answered (403)
    assert gaps[5] < 0.75  # after that answer it started over from 0.05 s instead of waiting 1.6 s


def parsed_size(obj: dict[str, Any]) -> tuple[str, int]:
    """A transform keeping only a ConfigMap's name and the integer in its `size` key (refusing anything else)."""
    return obj["metadata"]["name"], int(obj["data"]["size"])


def test_a_transform_stores_and_delivers_what_it_made_and_leaves_out_what_it_refuses():
    api = ScriptedApi()
    api.lists.put(objects.ObjectList([cm("a", "1", size="3"), cm("bad", "2", size="x")], "2"))
    api.watches.put(
        event("ADDED", cm("b", "3", size="5"))
        + event("MODIFIED", cm("a", "4", size="nope"))
        + event("MODIFIED", cm("bad", "5", size="7"))
    )
    heard: list[tuple[str, object]] = []
    watcher = informer.Informer(
        api, resources.CONFIG_MAPS, namespace="ns", settings=FAST, transform=parsed_size, page_size=20
    )
    watcher.add_handlers(
        informer.Handlers(
            on_add=lambda item: heard.append(("add", item)),
            on_update=lambda old, new: heard.append(("update", (old, new))),
            on_delete=lambda item: heard.append(("delete", item)),
        )
    )
    watcher.start()
    try:
        wait_until(lambda: "5" in api.watched_from, timeout=WAIT, what="the watch to be resumed after its events")
    finally:
        watcher.stop()
    assert heard == [("add", ("a", 3)), ("add", ("b", 5)), ("delete", ("a", 3)), ("add", ("bad", 7))]
    assert sorted(watcher.store.list()) == [("b", 5), ("bad", 7)]
    assert api.page_sizes == [20]


def test_managed_fields_never_reach_the_store():
    api = ScriptedApi()
    with_fields = cm("a", "1")
    with_fields["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}]
    api.lists.put(objects.ObjectList([with_fields], "1"))
    watcher = informer.Informer(api, resources.CONFIG_MAPS, namespace="ns", settings=FAST)
    watcher.start()
    try:
        assert watcher.wait_for_sync(WAIT)
    finally:
        watcher.stop()
    assert watcher.store.get("ns/a") == cm("a", "1")
