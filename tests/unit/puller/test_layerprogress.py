"""Per-pull byte progress from containerd's per-layer download list."""

from __future__ import annotations

from services.puller.logic import layerprogress
from services.puller.logic.layerprogress import Ingest, LayerState, PullBytes


def test_new_layers_go_to_the_only_pull_in_flight() -> None:
    owners = layerprogress.assign_new_layers([Ingest("a", 0, 10), Ingest("b", 0, 10)], {}, ["pull-1"])
    assert owners == {"a": "pull-1", "b": "pull-1"}


def test_new_layers_are_not_attributed_while_several_pulls_run() -> None:
    owners = layerprogress.assign_new_layers([Ingest("a", 0, 10), Ingest("c", 0, 10)], {"a": "p1"}, ["p1", "p2"])
    assert owners == {"a": "p1"}


def test_known_layers_keep_their_owner() -> None:
    assert layerprogress.assign_new_layers([Ingest("a", 5, 10)], {"a": "p1"}, ["p2"]) == {"a": "p1"}


def test_bytes_grow_and_vanished_layers_count_as_complete() -> None:
    first = layerprogress.observe(PullBytes(), [Ingest("a", 2, 10), Ingest("b", 0, 20)])
    assert (first.done, first.total) == (2, 30)
    second = layerprogress.observe(first, [Ingest("b", 5, 20)])
    assert second.layers["a"] == LayerState(done=10, total=10, complete=True)
    assert (second.done, second.total) == (15, 30)
    third = layerprogress.observe(second, [Ingest("b", 20, 20), Ingest("c", 1, 4)])
    assert list(third.layers) == ["a", "b", "c"]
    assert (third.done, third.total) == (31, 34)
