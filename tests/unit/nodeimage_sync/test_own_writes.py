"""A NodeImage version the reconciler has already acted on is not reconciled again when its event arrives.

Over the in-memory apiserver of test_reconciler: one reconcile that removes an expired tag writes the spec and
then the status, and the watch events of both writes are skipped, while another writer's version is not.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any

from services.nodeimage_sync.owners import OwnerResolver
from services.nodeimage_sync.ownwrites import OwnWrites
from services.nodeimage_sync.triggering import Triggers
from services.shared.api import timefmt
from services.shared.api.meta import ObjectMeta
from services.shared.api.nodeimage import NodeImage
from services.shared.clock import ManualClock
from services.shared.kube import store, workqueue
from tests.unit.nodeimage_sync.test_reconciler import NOW, Events, FakeApi, a_node, a_nodeimage, reconciler_for


def version(resource_version: str, name: str = "n1") -> NodeImage:
    return NodeImage(metadata=ObjectMeta(name=name, resource_version=resource_version))


def test_a_recorded_version_is_an_echo_once() -> None:
    own = OwnWrites()
    with own.acting("n1") as decided:
        decided.extend(["5", "6"])
    assert own.is_echo("n1", "6")
    assert not own.is_echo("n1", "6"), "only once"
    assert not own.is_echo("n1", "7"), "another writer's version"
    assert not own.is_echo("n2", "5"), "another NodeImage"
    own.forget("n1")
    assert not own.is_echo("n1", "5")


def test_an_event_arriving_while_the_worker_acts_waits_for_its_record() -> None:
    own = OwnWrites(in_flight_wait=30.0)
    answers: list[bool] = []
    with own.acting("n1") as decided:
        handler = threading.Thread(target=lambda: answers.append(own.is_echo("n1", "9")))
        handler.start()
        handler.join(0.2)
        assert handler.is_alive(), "the handler did not wait for the worker acting on the same name"
        decided.append("9")
    handler.join(30.0)
    assert answers == [True]


def expired_nodeimage() -> dict[str, Any]:
    raw = a_nodeimage("n1", created_ago=600)
    finished = timefmt.format_time(NOW - datetime.timedelta(seconds=120))
    raw["status"] = {
        "desired": 1,
        "succeeded": 1,
        "imageStatuses": {"nginx": {"tags": [{"tag": "1", "phase": "Succeeded", "completionTime": finished}]}},
    }
    return raw


def test_an_expired_tag_is_one_reconcile_and_its_writes_echo_nowhere() -> None:
    api, events = FakeApi(), Events()
    stored = api.put(expired_nodeimage())
    reconciler = reconciler_for(api, [a_node("n1")], [stored], events)
    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue()
    triggers = Triggers(
        queue=queue,
        nodeimages=store.Store(),
        owners=OwnerResolver(api, store.Store()),  # type: ignore[arg-type]
        clock=ManualClock(NOW),
        creation_delay=30,
        own_writes=reconciler.own_writes,
    )
    on_update = triggers.nodeimage_handlers().on_update
    assert on_update is not None

    reconciler.reconcile("n1")

    assert api.writes == [("spec", "n1"), ("status", "n1")], "spec and status in one reconcile"
    assert "nginx" not in (api.objects["n1"].get("spec") or {}).get("images", {})
    assert "imageStatuses" not in api.objects["n1"]["status"]
    spec_written, status_written = version("2"), version("3")
    on_update(NodeImage.from_dict(stored), spec_written)
    on_update(spec_written, status_written)
    assert len(queue) == 0, "the echoes of our own writes were queued"
    on_update(status_written, NodeImage.from_dict(api.put(api.objects["n1"])))  # someone else writes
    assert len(queue) == 1
