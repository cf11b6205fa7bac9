"""The status writer: skips unchanged statuses, starts from the cache, and retries conflicts on a fresh read."""

from __future__ import annotations

import copy
import datetime
import time
from collections.abc import Mapping
from typing import Any

from localcluster.process import wait_until
from services.puller import statusbook, statuswriter
from services.puller.logic import tagstate
from services.puller.logic.tagstate import TagKey
from services.shared.kube import errors
from services.shared.kube.resources import Resource

KEY = TagKey("ubuntu", "latest")


class OneObjectApi:
    """Just enough of `ObjectApi` for one NodeImage: get, and status patches guarded by resourceVersion."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.gets = 0
        self.patches: list[Mapping[str, Any]] = []

    def get(self, resource: Resource, name: str, **_: Any) -> dict[str, Any]:
        self.gets += 1
        return copy.deepcopy(self.obj)

    def patch_status(
        self, resource: Resource, name: str, patch: Mapping[str, Any], *, resource_version: str | None = None, **_: Any
    ) -> dict[str, Any]:
        self.patches.append(patch)
        if resource_version != self.obj["metadata"]["resourceVersion"]:
            raise errors.Conflict("the object has been modified", code=409, reason="Conflict")
        status = dict(self.obj.get("status") or {})
        for key, value in patch["status"].items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        self.obj["status"] = status
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)
        return copy.deepcopy(self.obj)


def a_node_image(resource_version: str) -> dict[str, Any]:
    return {
        "apiVersion": "prepull.io/v1beta1",
        "kind": "NodeImage",
        "metadata": {"name": "node-a", "resourceVersion": resource_version},
        "spec": {"images": {"ubuntu": {"tags": [{"tag": "latest"}]}}},
    }


def writer_for(
    api: OneObjectApi, cached: dict[str, Any] | None
) -> tuple[statuswriter.StatusWriter, statusbook.StatusBook]:
    book = statusbook.StatusBook()
    token = book.claim(KEY)
    book.record(KEY, token, tagstate.waiting(KEY, 0))
    writer = statuswriter.StatusWriter(api, "node-a", book, cached=lambda: cached)  # type: ignore[arg-type]
    return writer, book


def test_writes_from_the_cached_object_without_a_get() -> None:
    api = OneObjectApi(a_node_image("5"))
    writer, _ = writer_for(api, a_node_image("5"))
    assert writer.write_once()
    assert api.gets == 0
    assert api.obj["status"]["waiting"] == 1
    assert api.obj["status"]["imageStatuses"]["ubuntu"]["tags"][0]["phase"] == "Waiting"


def test_stale_cache_conflicts_and_is_retried_on_a_fresh_read() -> None:
    api = OneObjectApi(a_node_image("7"))
    writer, _ = writer_for(api, a_node_image("5"))
    assert writer.write_once()
    assert api.gets == 1
    assert len(api.patches) == 2
    assert api.obj["status"]["desired"] == 1


def test_unchanged_status_is_not_written() -> None:
    api = OneObjectApi(a_node_image("5"))
    writer, _ = writer_for(api, None)
    assert writer.write_once()
    assert not writer.write_once()
    assert len(api.patches) == 1
    assert writer.writes == 1


def test_the_write_that_finishes_every_tag_is_not_held_for_the_coalesce_time() -> None:
    # Issue 9: jobs wait for this write; each wave of a job with a parallelism paid the coalesce time on top.
    api = OneObjectApi(a_node_image("5"))
    book = statusbook.StatusBook()
    token = book.claim(KEY)
    started = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    pulling = tagstate.pulling(KEY, 0, started)
    book.record(KEY, token, tagstate.succeeded(pulling, image_name="ubuntu:latest", runtime_id="sha256:1", now=started))
    hours = statuswriter.WriterSettings(coalesce=3600.0)
    writer = statuswriter.StatusWriter(
        api,  # type: ignore[arg-type]
        "node-a",
        book,
        settings=hours,
        cached=lambda: copy.deepcopy(api.obj),
    )
    writer.start()
    try:
        writer.mark_dirty()
        wait_until(lambda: writer.writes == 1, timeout=30, interval=0.05, what="the finishing status write")
    finally:
        writer.stop()
    assert api.obj["status"]["succeeded"] == 1


def test_a_cache_that_lags_behind_our_own_last_write_costs_no_conflict() -> None:
    # Issue 9: on a busy apiserver the watch often had not brought our own last write back before the next
    # write (the pull finishing), which then conflicted and needed a GET and a second patch.
    api = OneObjectApi(a_node_image("5"))
    lagging = a_node_image("5")
    writer, book = writer_for(api, lagging)
    assert writer.write_once()  # Waiting; the object is now at resourceVersion 6, the cache still at 5
    token = book.claim(KEY)
    book.record(KEY, token, tagstate.pulling(KEY, 0, datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)))
    assert writer.write_once()
    assert (len(api.patches), api.gets) == (2, 0)
    assert api.obj["status"]["imageStatuses"]["ubuntu"]["tags"][0]["phase"] == "Pulling"


def test_a_cache_newer_than_our_last_write_is_preferred() -> None:
    api = OneObjectApi(a_node_image("5"))
    cache: dict[str, Any] = {"object": a_node_image("5")}
    book = statusbook.StatusBook()
    token = book.claim(KEY)
    book.record(KEY, token, tagstate.waiting(KEY, 0))
    writer = statuswriter.StatusWriter(api, "node-a", book, cached=lambda: cache["object"])  # type: ignore[arg-type]
    assert writer.write_once()
    api.obj["spec"]["images"]["ubuntu"]["tags"].append({"tag": "22.04"})  # someone else's spec write...
    api.obj["metadata"]["resourceVersion"] = "7"
    cache["object"] = copy.deepcopy(api.obj)  # ...which the cache already holds
    assert writer.write_once()
    assert (len(api.patches), api.gets) == (2, 0)
    assert api.obj["status"]["desired"] == 2


def test_a_round_finishing_while_the_writer_waits_for_a_token_is_written_at_once() -> None:
    # Issue 9: the writer slept out the whole token wait (up to 2 s at upstream's rate) even when the change
    # that finished every tag, the write jobs wait for, arrived during that sleep.
    api = OneObjectApi(a_node_image("5"))
    book = statusbook.StatusBook()
    one_token_an_hour = statuswriter.WriterSettings(qps=1 / 3600, burst=1, coalesce=0.0)
    writer = statuswriter.StatusWriter(
        api,  # type: ignore[arg-type]
        "node-a",
        book,
        settings=one_token_an_hour,
        cached=lambda: copy.deepcopy(api.obj),
    )
    started = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    pulling = tagstate.pulling(KEY, 0, started)
    writer.start()
    try:
        book.record(KEY, book.claim(KEY), tagstate.waiting(KEY, 0))
        writer.mark_dirty()
        wait_until(lambda: writer.writes == 1, timeout=30, interval=0.05, what="the first write (the burst)")
        book.record(KEY, book.claim(KEY), pulling)
        writer.mark_dirty()  # not finishing: waits for the next token, an hour away
        time.sleep(0.5)  # let the writer reach that wait (were it not there yet, the test would prove nothing)
        book.record(
            KEY,
            book.claim(KEY),
            tagstate.succeeded(pulling, image_name="ubuntu:latest", runtime_id="sha256:1", now=started),
        )
        writer.mark_dirty()
        wait_until(lambda: writer.writes == 2, timeout=30, interval=0.05, what="the finishing write, without a token")
    finally:
        writer.stop()
    assert api.obj["status"]["succeeded"] == 1
