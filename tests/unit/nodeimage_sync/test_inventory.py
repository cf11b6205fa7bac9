"""The in-memory inventory: sequencing of reports, per-node bounds, and the queries answered from it."""

from __future__ import annotations

import tracemalloc

import pytest

from services.nodeimage_sync import inventory, nodewatch
from services.nodeimage_sync.logic import labelselector, presence
from services.nodeimage_sync.logic.presence import InventoryImage
from services.nodeimage_sync.queries import InvalidPageToken, NodeQueries, NodeSelection, NodeView
from services.shared.api.meta import ObjectMeta
from services.shared.api.nodeimage import NodeImage
from services.shared.auth.errors import PermissionDenied
from services.shared.clock import ManualClock
from services.shared.kube import store

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
NGINX = InventoryImage(digest=A, repo_tags=("docker.io/library/nginx:1.25",), size_bytes=100)
REDIS = InventoryImage(digest=B, repo_tags=("docker.io/library/redis:7",), size_bytes=50)


def a_store(max_images: int = 10, max_names: int = 4) -> inventory.InventoryStore:
    return inventory.InventoryStore(max_images=max_images, max_names=max_names, clock=ManualClock())


def test_snapshot_replaces_and_delta_applies_in_sequence():
    inv = a_store()
    assert inv.apply_snapshot("n1", 5, [NGINX]) == inventory.ReportOutcome(True, 5)
    assert inv.apply_delta("n1", 6, upserted=[REDIS], removed_digests=[A]) == inventory.ReportOutcome(True, 6)
    node = inv.get("n1")
    assert node is not None
    assert set(node.images) == {B}
    assert node.image_bytes == 50


@pytest.mark.parametrize("sequence", [5, 7, 100], ids=["repeated", "gap", "far-ahead"])
def test_out_of_sequence_delta_is_refused_and_asks_for_a_snapshot(sequence: int):
    inv = a_store()
    inv.apply_snapshot("n1", 5, [NGINX])
    assert inv.apply_delta("n1", sequence, upserted=[REDIS], removed_digests=[]) == inventory.ReportOutcome(False, 5)
    node = inv.get("n1")
    assert node is not None and set(node.images) == {A}


def test_delta_for_an_unknown_node_asks_for_a_snapshot():
    assert a_store().apply_delta("n1", 1, upserted=[NGINX], removed_digests=[]) == inventory.ReportOutcome(False, 0)


def test_bounds_refuse_too_many_images_and_cut_names():
    inv = a_store(max_images=1, max_names=2)
    with pytest.raises(inventory.InventoryLimitExceeded):
        inv.apply_snapshot("n1", 1, [NGINX, REDIS])
    many = InventoryImage(digest=A, repo_tags=("a:1", "a:2", "a:3"), repo_digests=(f"a@{B}",))
    inv.apply_snapshot("n1", 1, [many])
    node = inv.get("n1")
    assert node is not None
    assert node.images[A].repo_tags == ("a:1", "a:2") and node.images[A].repo_digests == ()


def test_nodes_with_equal_images_share_them_and_a_change_on_one_leaves_the_others_alone():
    inventories = a_store()
    copy_of_nginx = InventoryImage(digest=A, repo_tags=("docker.io/library/nginx:1.25",), size_bytes=100)
    inventories.apply_snapshot("n1", 1, [NGINX, REDIS])
    inventories.apply_snapshot("n2", 1, [REDIS, copy_of_nginx])
    inventories.apply_snapshot("n3", 1, [NGINX])

    def of(node: str) -> inventory.NodeInventory:
        found = inventories.get(node)
        assert found is not None
        return found

    assert of("n1").images is of("n2").images and of("n1").index is of("n2").index
    assert of("n3").images[A] is of("n1").images[A]
    inventories.apply_delta("n2", 2, upserted=[], removed_digests=[B])
    assert (set(of("n1").images), set(of("n2").images)) == ({A, B}, {A})
    query = presence.Query(normalized="docker.io/library/redis:7", reference="docker.io/library/redis:7")
    assert (of("n1").find(query), of("n2").find(query)) == (REDIS, None)


def test_memory_is_measured_and_released():
    inv = a_store()
    inv.apply_snapshot("n1", 1, [NGINX, REDIS])
    totals = inv.totals()
    assert (totals.nodes, totals.images) == (1, 2)
    assert totals.memory_bytes >= 2 * inventory.PER_IMAGE_OVERHEAD_BYTES
    inv.forget("n1")
    assert inv.totals() == inventory.Totals(0, 0, 0)


def nodeimage(name: str, **labels: str) -> store.Entry[NodeImage]:
    return store.Entry(name, "1", NodeImage(metadata=ObjectMeta(name=name, labels=labels, resource_version="1")))


def queries_with(*nodes: store.Entry[NodeImage]) -> tuple[NodeQueries, inventory.InventoryStore]:
    cache: store.Store[NodeImage] = store.Store()
    cache.replace(nodes)
    inv = a_store()
    return NodeQueries(nodeimages=cache, inventory=inv), inv


def test_which_nodes_splits_present_absent_unknown():
    queries, inv = queries_with(nodeimage("n1"), nodeimage("n2"), nodeimage("n3"))
    inv.apply_snapshot("n1", 1, [NGINX])
    inv.apply_snapshot("n2", 1, [REDIS])
    answer = queries.which_nodes("nginx:1.25", NodeSelection())
    assert answer.normalized == "docker.io/library/nginx:1.25"
    assert [(view.name, image.digest) for view, image in answer.present] == [("n1", A)]
    assert (answer.absent, answer.unknown) == (("n2",), ("n3",))
    assert [v.name for v, _ in queries.which_nodes(A, NodeSelection()).present] == ["n1"]


def test_selection_by_labels_and_names():
    queries, _ = queries_with(nodeimage("n1", zone="a"), nodeimage("n2", zone="b"), nodeimage("n3", zone="a"))
    by_label = queries.select(NodeSelection(selector=labelselector.parse("zone=a")))
    assert [v.name for v in by_label] == ["n1", "n3"]
    by_name = queries.select(NodeSelection(names=("n3", "missing", "n2")))
    assert [v.name for v in by_name] == ["n2", "n3"]


def test_paging_walks_every_node_once():
    queries, _ = queries_with(*(nodeimage(f"n{i}") for i in range(5)))
    seen, token = [], ""
    while True:
        page, token = queries.page(NodeSelection(), page_size=2, page_token=token)
        seen += [v.name for v in page]
        if not token:
            break
    assert seen == [f"n{i}" for i in range(5)]
    with pytest.raises(InvalidPageToken):
        queries.page(NodeSelection(), page_size=2, page_token="x" * 300)


def test_a_puller_reports_only_its_own_node():
    queries, inv = queries_with(nodeimage("n1"))
    with pytest.raises(PermissionDenied):
        queries.report(caller_node="n2", node="n1", sequence=1, snapshot=[NGINX])
    assert inv.get("n1") is None
    assert queries.report(caller_node="n1", node="n1", sequence=1, snapshot=[NGINX]).applied


def test_watch_stream_reports_membership_changes():
    hub = nodewatch.NodeWatchHub()
    current = {"n1": NodeView("n1", {"zone": "a"}), "n2": NodeView("n2", {"zone": "b"})}
    selection = NodeSelection(selector=labelselector.parse("zone=a"))
    events = nodewatch.stream(
        hub,
        lookup=current.get,
        initial=lambda: [v for v in current.values() if selection.admits(v.name, v.labels)],
        selection=selection,
        active=lambda: True,
        poll_seconds=0.01,
    )
    assert next(events) == (nodewatch.WatchEventType.ADDED, current["n1"])
    assert next(events) == (nodewatch.WatchEventType.SYNCED, None)
    current["n2"] = NodeView("n2", {"zone": "a"})
    hub.notify("n2")
    assert next(events) == (nodewatch.WatchEventType.ADDED, current["n2"])
    old = current.pop("n1")
    hub.notify("n1")
    assert next(events) == (nodewatch.WatchEventType.DELETED, old)
    current["n2"] = NodeView("n2", {"zone": "b"})
    hub.notify("n2")
    assert next(events)[0] == nodewatch.WatchEventType.DELETED
    hub.close()
    assert list(events) == []


def test_memory_estimate_tracks_what_python_allocates():
    inv = a_store(max_images=5000, max_names=8)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        images = [
            InventoryImage(
                digest=f"sha256:{i:064x}",
                repo_tags=(f"registry.example.com:5000/team/app-{i}:v1.2.{i}",),
                repo_digests=(f"registry.example.com:5000/team/app-{i}@sha256:{i + 10**6:064x}",),
                size_bytes=i,
            )
            for i in range(400)
        ]
        inv.apply_snapshot("n1", 1, images)
        del images
        measured = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    estimated = inv.totals().memory_bytes
    assert 0.5 * measured <= estimated <= 2 * measured, (estimated, measured)


def test_index_follows_deltas():
    inv = a_store()
    inv.apply_snapshot("n1", 1, [NGINX, REDIS])
    retagged = InventoryImage(digest=B, repo_tags=("docker.io/library/redis:8",), size_bytes=50)
    inv.apply_delta("n1", 2, upserted=[retagged], removed_digests=[A])
    node = inv.get("n1")
    assert node is not None
    assert node.find(presence.parse_query("redis:8")) == retagged
    assert node.find(presence.parse_query("redis:7")) is None
    assert node.find(presence.parse_query("nginx:1.25")) is None
    assert node.find(presence.parse_query(A)) is None
