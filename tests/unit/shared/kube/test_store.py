"""A re-list tells handlers exactly what changed while nobody was watching."""

from __future__ import annotations

from typing import Any

from services.shared.kube import store


def obj(name: str, rv: str, namespace: str | None = "ns") -> dict[str, Any]:
    metadata = {"name": name, "resourceVersion": rv} | ({"namespace": namespace} if namespace else {})
    return {"metadata": metadata}


def keyed(*listed: dict[str, Any]) -> dict[str, store.Entry[dict[str, Any]]]:
    return {entry.key: entry for entry in store.entries_of(listed)}


def test_diff_finds_added_updated_and_deleted_objects():
    current = keyed(obj("a", "1"), obj("b", "2"), obj("c", "3"))
    listed = keyed(obj("a", "1"), obj("b", "7"), obj("d", "8"))
    changes = store.diff(current, listed)
    assert changes.added == [obj("d", "8")]
    assert changes.updated == [(obj("b", "2"), obj("b", "7"))]
    assert changes.deleted == [obj("c", "3")]


def test_replace_keys_objects_by_namespace_and_name_and_reports_the_diff():
    objects_store: store.Store[dict[str, Any]] = store.Store()
    objects_store.replace(store.entries_of([obj("a", "1"), obj("node-1", "1", namespace=None)]))
    assert sorted(objects_store.keys()) == ["node-1", "ns/a"]
    changes = objects_store.replace(store.entries_of([obj("a", "2")]))
    assert [o["metadata"]["name"] for o in changes.deleted] == ["node-1"]
    assert len(changes.updated) == 1
    assert objects_store.get("ns/a") == obj("a", "2")
    assert len(objects_store) == 1


def test_upsert_and_remove_return_the_previous_object():
    objects_store: store.Store[dict[str, Any]] = store.Store()
    assert objects_store.upsert(store.entry_of(obj("a", "1"))) is None
    assert objects_store.upsert(store.entry_of(obj("a", "2"))) == obj("a", "1")
    assert objects_store.remove("ns/a") == obj("a", "2")
    assert objects_store.remove("ns/a") is None


def test_items_are_whatever_the_informer_made_of_each_object_and_diffed_by_resource_version():
    names: store.Store[str] = store.Store()
    names.replace([store.Entry("ns/a", "1", "a at 1"), store.Entry("ns/b", "1", "b at 1")])
    changes = names.replace([store.Entry("ns/a", "1", "a again"), store.Entry("ns/b", "2", "b at 2")])
    assert (changes.added, changes.updated, changes.deleted) == ([], [("b at 1", "b at 2")], [])
    assert names.get("ns/a") == "a again"
