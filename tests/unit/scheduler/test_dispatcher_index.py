"""The dispatcher's index of active jobs answers "which specs own this tag" by UID."""

from __future__ import annotations

from typing import Any

from services.scheduler.dispatcher import Dispatcher
from services.scheduler.expectations import Expectations
from services.scheduler.view import ClusterView, node_image_informer
from services.shared.api.imagepulljob import ImagePullJob
from services.shared.kube import informer, resources


def job(name: str, image: str, **status: Any) -> ImagePullJob:
    raw: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"image": image},
    }
    if status:
        raw["status"] = status
    return ImagePullJob.from_dict(raw)


def dispatcher() -> Dispatcher:
    lister: Any = object()  # never started: the index is fed directly
    view = ClusterView(
        jobs=informer.Informer(lister, resources.IMAGE_PULL_JOBS),
        list_jobs=informer.Informer(lister, resources.IMAGE_LIST_PULL_JOBS),
        node_images=node_image_informer(lister),
        pods=informer.Informer(lister, resources.PODS),
    )
    return Dispatcher(view, Expectations(10.0), lambda _key: None, lambda _key: None)


def test_specs_by_uid_follows_the_index_through_updates_completion_and_deletion() -> None:
    index = dispatcher()
    index.index("ns/a", job("a", "nginx:1"))
    index.index("ns/b", job("b", "nginx:1"))
    index.index("ns/a", job("a", "nginx:2"))
    found = index.specs_by_uid(["uid-a", "uid-b", "uid-unknown"])
    assert {uid: spec.image for uid, spec in found.items()} == {"uid-a": "nginx:2", "uid-b": "nginx:1"}
    index.index("ns/b", job("b", "nginx:1", desired=1, completionTime="2026-01-01T00:00:00Z"))
    index.index("ns/a", None)
    assert index.specs_by_uid(["uid-a", "uid-b"]) == {}
