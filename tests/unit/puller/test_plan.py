"""Which tags need a worker and the status written back (upstream-behaviour.md §5.2, §5.6)."""

from __future__ import annotations

import pytest

from services.puller.logic import plan, tagstate
from services.puller.logic.tagstate import TagKey
from services.shared.api import nodeimage
from tests.unit.puller.builders import T0, a_node_image, a_status, a_tag

UBUNTU = TagKey("ubuntu", "latest")
NGINX = TagKey("nginx", "1.25")


def status_of(entry: dict[str, object]) -> nodeimage.ImageTagStatus:
    return nodeimage.ImageTagStatus.from_dict(entry)


def test_new_tags_get_workers() -> None:
    node_image = a_node_image({"ubuntu": [a_tag("latest")], "nginx": [a_tag("1.25", version=2)]})
    result = plan.plan_sync(node_image, workers={}, known={})
    assert {(task.key, task.version) for task in result.start} == {(UBUNTU, 0), (NGINX, 2)}
    assert result.stop == ()


def test_running_worker_of_the_same_version_is_kept() -> None:
    node_image = a_node_image({"ubuntu": [a_tag("latest", version=1)]})
    assert plan.plan_sync(node_image, workers={UBUNTU: 1}, known={}).empty


def test_version_bump_restarts_the_worker() -> None:
    node_image = a_node_image({"ubuntu": [a_tag("latest", version=2)]})
    result = plan.plan_sync(node_image, workers={UBUNTU: 1}, known={})
    assert result.stop == (UBUNTU,)
    assert [(task.key, task.version) for task in result.start] == [(UBUNTU, 2)]


def test_removed_tag_stops_its_worker_and_is_forgotten() -> None:
    node_image = a_node_image({"nginx": [a_tag("1.25")]})
    known = {UBUNTU: tagstate.waiting(UBUNTU, 0), NGINX: tagstate.waiting(NGINX, 0)}
    result = plan.plan_sync(node_image, workers={UBUNTU: 0, NGINX: 0}, known=known)
    assert result.stop == (UBUNTU,)
    assert result.forget == (UBUNTU,)
    assert result.start == ()


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_finished_round_is_adopted_not_pulled_again(phase: str) -> None:
    stored = a_status("latest", phase, version=1)
    node_image = a_node_image({"ubuntu": [a_tag("latest", version=1)]}, {"ubuntu": [stored]})
    result = plan.plan_sync(node_image, workers={}, known={})
    assert result.start == ()
    assert result.adopt == {UBUNTU: status_of(stored)}


def test_final_status_written_by_another_component_stops_our_worker() -> None:
    stored = a_status("latest", "Failed", message="node has not responded for 10 minutes")
    node_image = a_node_image({"ubuntu": [a_tag("latest")]}, {"ubuntu": [stored]})
    result = plan.plan_sync(node_image, workers={UBUNTU: 0}, known={UBUNTU: tagstate.waiting(UBUNTU, 0)})
    assert result.stop == (UBUNTU,)
    assert result.start == ()
    assert result.adopt == {UBUNTU: status_of(stored)}


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(a_status("latest", "Pulling"), id="was-pulling"),
        pytest.param(a_status("latest", "Waiting"), id="was-waiting"),
        pytest.param(a_status("latest", "Succeeded", version=0), id="finished-older-version"),
    ],
)
def test_after_restart_unfinished_rounds_start_again(stored: dict[str, object]) -> None:
    node_image = a_node_image(
        {"ubuntu": [a_tag("latest", version=1 if stored["phase"] == "Succeeded" else 0)]}, {"ubuntu": [stored]}
    )
    result = plan.plan_sync(node_image, workers={}, known={})
    assert [task.key for task in result.start] == [UBUNTU]
    assert result.adopt == {}


def test_status_counts_and_sorting() -> None:
    node_image = a_node_image({"ubuntu": [a_tag("b"), a_tag("a"), a_tag("c")], "nginx": [a_tag("1.25")]})
    known = {
        TagKey("ubuntu", "a"): status_of(a_status("a", "Succeeded")),
        TagKey("ubuntu", "b"): status_of(a_status("b", "Pulling")),
        TagKey("ubuntu", "c"): status_of(a_status("c", "Failed", message="x")),
        NGINX: tagstate.waiting(NGINX, 0),
    }
    status = plan.build_status(node_image, known, observed_generation=3)
    assert (status.desired, status.succeeded, status.pulling, status.failed, status.waiting) == (4, 1, 1, 1, 1)
    assert [entry.tag for entry in (status.image_statuses or {})["ubuntu"].tags] == ["a", "b", "c"]
    assert status.observed_generation == 3


def test_status_lists_only_tags_in_the_spec_at_the_spec_version() -> None:
    node_image = a_node_image({"ubuntu": [a_tag("latest", version=2)]})
    known = {UBUNTU: status_of(a_status("latest", "Succeeded", version=1)), NGINX: tagstate.waiting(NGINX, 0)}
    status = plan.build_status(node_image, known)
    assert status.desired == 1
    assert status.image_statuses is None
    assert (status.succeeded, status.waiting) == (0, 0)


def test_stored_final_status_wins_over_our_unfinished_one() -> None:
    stored = a_status("latest", "Failed", message="deadline")
    node_image = a_node_image({"ubuntu": [a_tag("latest")]}, {"ubuntu": [stored]})
    status = plan.build_status(node_image, {UBUNTU: tagstate.pulling(UBUNTU, 0, T0)})
    assert (status.image_statuses or {})["ubuntu"].tags[0].message == "deadline"
    assert status.failed == 1


def test_our_final_status_wins_over_a_stored_final_one_of_the_same_version() -> None:
    stored = a_status("latest", "Failed", message="old")
    node_image = a_node_image({"ubuntu": [a_tag("latest")]}, {"ubuntu": [stored]})
    ours = status_of(a_status("latest", "Succeeded"))
    status = plan.build_status(node_image, {UBUNTU: ours})
    assert (status.image_statuses or {})["ubuntu"].tags[0] == ours


def test_empty_spec_writes_an_empty_status() -> None:
    status = plan.build_status(a_node_image({}), {})
    assert status.to_dict() == {"desired": 0, "succeeded": 0, "failed": 0, "pulling": 0, "waiting": 0}


@pytest.mark.parametrize(
    ("entries", "pulling"),
    [
        pytest.param([a_status("latest", "Succeeded")], False, id="all-final"),
        pytest.param([a_status("latest", "Pulling")], True, id="one-pulling"),
        pytest.param([], True, id="not-reported"),
    ],
)
def test_still_pulling(entries: list[dict[str, object]], pulling: bool) -> None:
    node_image = a_node_image({"ubuntu": [a_tag("latest")]})
    known = {UBUNTU: status_of(entries[0])} if entries else {}
    assert plan.is_still_pulling(plan.build_status(node_image, known), node_image) is pulling
