"""Pulls in flight for the cluster and per-registry caps (design §5), counted afresh or incrementally."""

from __future__ import annotations

from typing import Any

from services.scheduler.logic import inflight
from services.shared.api.nodeimage import NodeImage
from tests.unit.scheduler.builders import tag_entry, tag_status


def node_image(name: str, images: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]) -> NodeImage:
    """A NodeImage with, per image, its tag entries and its status entries."""
    body: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {"images": {image: {"tags": tags} for image, (tags, _) in images.items()}},
        "status": {"desired": 0, "imageStatuses": {image: {"tags": st} for image, (_, st) in images.items() if st}},
    }
    return NodeImage.from_dict(body)


def mixed(name: str) -> NodeImage:
    return node_image(
        name,
        {
            "nginx": (
                [tag_entry("no-status"), tag_entry("pulling"), tag_entry("done"), tag_entry("old", version=2)],
                [tag_status("pulling", "Pulling"), tag_status("done"), tag_status("old", version=1)],
            ),
            "quay.io/a/b": (
                [tag_entry("failed"), tag_entry("waiting")],
                [tag_status("failed", "Failed"), tag_status("waiting", "Waiting")],
            ),
        },
    )


def test_unfinished_entries_of_their_version_are_in_flight() -> None:
    counted = inflight.count_in_flight([mixed("a"), NodeImage.from_dict({"metadata": {"name": "empty"}})])
    assert counted.total == 4
    assert counted.by_registry == {"docker.io": 3, "quay.io": 1}


def test_the_last_status_entry_of_a_tag_counts() -> None:
    doubled = node_image("a", {"nginx": ([tag_entry("1.25")], [tag_status(phase="Pulling"), tag_status()])})
    assert inflight.count_in_flight([doubled]).total == 0
    reversed_order = node_image("a", {"nginx": ([tag_entry("1.25")], [tag_status(), tag_status(phase="Pulling")])})
    assert inflight.count_in_flight([reversed_order]).total == 1


def test_the_counter_follows_changed_added_and_removed_nodes() -> None:
    counter = inflight.InFlightCounter()
    quiet = node_image("b", {"nginx": ([tag_entry("1.25")], [tag_status()])})
    first = [mixed("a"), quiet, mixed("c")]
    assert counter.count(first) == inflight.count_in_flight(first)
    restarted = node_image("b", {"nginx": ([tag_entry("1.25", version=1)], [tag_status()])})
    second = [first[0], restarted, mixed("d")]
    assert counter.count(second) == inflight.count_in_flight(second)
    assert counter.count(second).total == 9
    assert counter.count([]) == inflight.InFlight()
