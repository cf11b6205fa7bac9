"""Owner existence from the job cache (with a confirming GET only when the cache cannot tell), job deletion
enqueuing exactly the NodeImages that name the job, and Node events read against the typed NodeImage cache."""

from __future__ import annotations

from typing import Any

from services.nodeimage_sync.logic.lifecycle import NodeFacts
from services.nodeimage_sync.logic.spec import OwnerKey
from services.nodeimage_sync.owners import OwnerResolver, job_identity
from services.nodeimage_sync.triggering import Triggers
from services.shared.api.meta import ObjectMeta
from services.shared.api.nodeimage import NodeImage
from services.shared.clock import ManualClock
from services.shared.kube import errors, store, workqueue


class JobsApi:
    """Answers GETs of ImagePullJobs from a dict, counting them; nothing else is needed here."""

    def __init__(self, jobs: dict[str, dict[str, Any]], *, fail: bool = False) -> None:
        self.jobs = jobs
        self.fail = fail
        self.gets = 0

    def get(self, resource: Any, name: str, *, namespace: str | None = None, timeout: float | None = None) -> Any:
        self.gets += 1
        if self.fail:
            raise errors.ServerError("etcd is unhappy", code=500)
        key = f"{namespace}/{name}"
        if key not in self.jobs:
            raise errors.NotFound("not found", code=404)
        return self.jobs[key]


def job(name: str, uid: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": uid, "resourceVersion": "1"}}


def resolver_with(cached: list[dict[str, Any]], live: dict[str, dict[str, Any]], *, fail: bool = False):
    cache: store.Store[OwnerKey] = store.Store()
    cache.replace(store.Entry(f"{ns}/{name}", "1", (ns, name, uid)) for ns, name, uid in map(job_identity, cached))
    api = JobsApi(live, fail=fail)
    return OwnerResolver(api, cache), api  # type: ignore[arg-type]


def test_cached_job_with_same_uid_exists_without_a_request():
    resolver, api = resolver_with([job("a", "u1")], {})
    assert resolver.exists(("ns", "a", "u1"))
    assert api.gets == 0


def test_job_seen_deleted_is_gone_without_a_request():
    resolver, api = resolver_with([], {})
    resolver.job_deleted(job_identity(job("a", "u1")))
    assert not resolver.exists(("ns", "a", "u1"))
    assert api.gets == 0


def test_job_missing_from_the_cache_is_confirmed_once():
    resolver, api = resolver_with([], {})
    assert not resolver.exists(("ns", "a", "u1"))
    assert not resolver.exists(("ns", "a", "u1"))
    assert api.gets == 1


def test_job_too_new_for_the_cache_is_kept():
    resolver, _ = resolver_with([], {"ns/a": job("a", "u1")})
    assert resolver.exists(("ns", "a", "u1"))


def test_recreated_job_with_another_uid_is_gone():
    resolver, _ = resolver_with([job("a", "u2")], {"ns/a": job("a", "u2")})
    assert not resolver.exists(("ns", "a", "u1"))
    assert resolver.exists(("ns", "a", "u2"))


def test_failed_lookup_keeps_the_owner():
    resolver, _ = resolver_with([], {}, fail=True)
    assert resolver.exists(("ns", "a", "u1"))


def nodeimage(name: str, *uids: str) -> store.Entry[NodeImage]:
    refs = [{"kind": "ImagePullJob", "uid": uid} for uid in uids]
    raw = {
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": {"images": {"nginx": {"tags": [{"tag": "1", "ownerReferences": refs}]}}},
    }
    return store.Entry(name, "1", NodeImage.from_dict(raw))


def test_job_deletion_enqueues_exactly_the_nodeimages_naming_it():
    nodeimages: store.Store[NodeImage] = store.Store()
    nodeimages.replace([nodeimage("n1", "u1"), nodeimage("n2", "u2"), nodeimage("n3", "u2", "u1"), nodeimage("n4")])
    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue()
    resolver, _ = resolver_with([], {})
    triggers = Triggers(queue=queue, nodeimages=nodeimages, owners=resolver, clock=ManualClock(), creation_delay=30)
    on_delete = triggers.job_handlers().on_delete
    assert on_delete is not None
    on_delete(job_identity(job("a", "u1")))
    taken = sorted(queue.get(timeout=0) or "" for _ in range(len(queue)))
    assert taken == ["n1", "n3"]
    assert not resolver.exists(("ns", "a", "u1"))


def test_node_events_queue_only_what_the_nodeimage_cache_says_can_matter():
    nodeimages: store.Store[NodeImage] = store.Store()
    labelled = NodeImage(metadata=ObjectMeta(name="n1", labels={"zone": "a"}, resource_version="1"))
    nodeimages.replace([store.Entry("n1", "1", labelled)])
    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue()
    resolver, _ = resolver_with([], {})
    handlers = Triggers(
        queue=queue, nodeimages=nodeimages, owners=resolver, clock=ManualClock(), creation_delay=0
    ).node_handlers()
    assert handlers.on_add is not None and handlers.on_delete is not None
    handlers.on_add(NodeFacts(name="n1", labels={"zone": "a"}, ready=True))
    assert len(queue) == 0, "labels already mirrored"
    handlers.on_add(NodeFacts(name="n1", labels={"zone": "b"}, ready=True))
    handlers.on_add(NodeFacts(name="n2", ready=True))
    assert sorted(queue.get(timeout=0) or "" for _ in range(len(queue))) == ["n1", "n2"]
    handlers.on_delete(NodeFacts(name="n3"))
    assert len(queue) == 0, "no NodeImage to delete"
