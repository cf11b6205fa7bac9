"""A re-list tells handlers exactly what changed while nobody was watching."""

from __future__ import annotations

from typing import Any

from services.shared.kube import store


def obj(name: str, rv: str, namespace: str | None = "ns") -> dict[str, Any]:
    metadata = {"name": name, "resourceVersion": rv} | ({"namespace": namespace} if namespace else {})
    return {"metadata": metadata}


def test_diff_finds_added_updated_and_deleted_objects():
    current = {"ns/a": obj("a", "1"), "ns/b": obj("b", "2"), "ns/c": obj("c", "3")}
    listed = {"ns/a": obj("a", "1"), "ns/b": obj("b", "7"), "ns/d": obj("d", "8")}
    changes = store.diff(current, listed)
    assert changes.added == [obj("d", "8")]
    assert changes.updated == [(obj("b", "2"), obj("b", "7"))]
    assert changes.deleted == [obj("c", "3")]


def test_replace_keys_objects_by_namespace_and_name_and_reports_the_diff():
    objects_store = store.Store()
    objects_store.replace([obj("a", "1"), obj("node-1", "1", namespace=None)])
    assert sorted(objects_store.keys()) == ["node-1", "ns/a"]
    changes = objects_store.replace([obj("a", "2")])
    assert [o["metadata"]["name"] for o in changes.deleted] == ["node-1"]
    assert len(changes.updated) == 1
    assert objects_store.get("ns/a") == obj("a", "2")
    assert len(objects_store) == 1


def test_upsert_and_remove_return_the_previous_object():
    objects_store = store.Store()
    assert objects_store.upsert(obj("a", "1")) is None
    assert objects_store.upsert(obj("a", "2")) == obj("a", "1")
    assert objects_store.remove("ns/a") == obj("a", "2")
    assert objects_store.remove("ns/a") is None
