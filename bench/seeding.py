"""A steady state written straight through the API: J jobs' tag entries and Succeeded statuses on N NodeImages.

Reaching the steady state of J jobs over N nodes the long way costs J x N tag writes by the scheduler and as
many status changes by the pullers (200 x 1,000 is 200,000 of each; 20 x 100 already took 234 s on 2 cores).
The seed instead writes each NodeImage once per part, whatever J is: its spec with every job's tag entry,
then its status with every tag Succeeded. To be a state the services would have reached, the content comes
from the services' own decision functions, not from a copy of their format:

- jobs are created with the scheduler's finalizer and a `prepull.io/trace-context` annotation already set
  (what the scheduler's first-sight write adds), so the tag entries can carry the job's trace context;
- each tag entry is what `scheduler.logic.tagentries.plan_image_spec` decides for that job on that node (owner
  reference with the job's UID, version 0, `createdAt`, the pull policy of `tagpolicy.new_tag_policy` with the
  scheduler's default timers and a fresh jitter per entry, `imagePullPolicy`, trace context);
- the status is what the puller's `logic.plan.build_status` builds from `tagstate.succeeded` entries (image ID
  from the simulated runtime, as an agent records it), with `observedGeneration` the spec write's generation.

How it is written: one NodeImage (the template) goes through the apiserver, as a spec merge-patch and a
status merge-patch, so validation, defaulting and `managedFields` are the apiserver's own. Through the
apiserver, every write of a NodeImage this size costs about a second on this 2-core machine (measured: 290 KB
at 200 tags, 127 KB of it `managedFields`; even a one-label patch took 1.0-1.5 s), which would make 2,000 to
6,000 seed writes take most of an hour. So, when given the etcd URL, the seeder writes the other NodeImages
straight into etcd: the object as nodeimage_sync created it (name, uid, labels, creation time), with the
seeded spec and status, the generation a spec write gives, and the template's `managedFields` (they name
fields only, and every node has the same field paths). The apiserver sees the change through its etcd
watch like any other. Nodes with an expiring tag are written last, so their TTL is counted from the end of
the seed (or seeded in a later call, after the list probe below).

The seed is checked, not trusted: after the services settle, the benchmark counts their NodeImage writes in
the audit log; any write means the seed differs from what they would have written.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client

from bench import etcdstore, listprobe
from bench.etcdstore import EtcdStore
from localcluster.simruntime import SimulatedImages
from services.puller.logic import plan, tagstate
from services.puller.simcri import SimulatedRuntime, SimulationSettings
from services.scheduler import tracecontext
from services.scheduler.logic import tagentries, tagpolicy, targets
from services.shared.api import constants, imageref
from services.shared.api.imagepulljob import ImagePullJob
from services.shared.api.meta import ObjectMeta, ObjectReference
from services.shared.api.nodeimage import ImageSpec, ImageTagStatus, NodeImage, NodeImageSpec, TraceContext

GROUP, VERSION = constants.GROUP, constants.VERSION
WORKERS = 8
"""Seeding threads: enough to keep the apiserver busy; building the bodies is CPU in this process too."""


@dataclass(frozen=True)
class SeededJob:
    """One job as the apiserver created it (defaults applied), with what its tag entries need."""

    job: ImagePullJob
    entry: imageref.NodeImageEntry
    image_id: str
    """`<image name>@<runtime image id>`, as an agent's Succeeded status records it."""

    @property
    def key(self) -> tagstate.TagKey:
        return tagstate.TagKey(self.entry.image, self.entry.tag)


@dataclass(frozen=True)
class Expiring:
    """One tag entry seeded as finished one TTL before `after` seconds after it is written."""

    node: str
    job: str
    after: float


@dataclass
class SeedResult:
    seconds: float = 0.0
    api_writes: int = 0
    etcd_writes: int = 0
    spec_bytes: int = 0
    """Size of one NodeImage's seeded spec (JSON of `spec`, as sent)."""
    object_bytes: int = 0
    """Size of the template NodeImage as the apiserver returns it (`managedFields` included)."""
    expiring: dict[str, tuple[int, datetime.datetime]] = field(default_factory=dict)
    """Per expiring job: the entry's TTL and the moment it runs out."""
    targets: collections.Counter[str] = field(default_factory=collections.Counter)
    """Per job name, the nodes seeded with its tag (the nodes its selector picks)."""

    @property
    def writes(self) -> int:
        return self.api_writes + self.etcd_writes


@dataclass
class Listability:
    """Whether the services could list the seeded NodeImages, and what was done about it."""

    services: listprobe.ListTimes | None = None
    """One page as the services' informers ask for it, with the seed as written."""
    agent: listprobe.ListTimes | None = None
    """One agent's list of its own NodeImage (field selector), with the seed as written."""
    stripped_seconds: float | None = None
    """Set when `managedFields` had to be dropped: the seconds that took."""
    services_after: listprobe.ListTimes | None = None
    agent_after: listprobe.ListTimes | None = None

    def describe(self) -> str:
        assert self.services is not None and self.agent is not None
        text = (
            f"One list page as the services' informers ask for it (limit {listprobe.PAGE_SIZE}, no "
            f"resourceVersion) took {listprobe.describe(self.services)}; an agent's list of its own NodeImage "
            f"{listprobe.describe(self.agent)}. The services give a page {listprobe.SERVICE_READ_TIMEOUT:.0f} s."
        )
        if self.stripped_seconds is None or self.services_after is None or self.agent_after is None:
            return text + " `managedFields` were kept."
        return (
            f"{text} That is too long for them to ever sync, so `managedFields` were dropped from the stored "
            f"NodeImages ({self.stripped_seconds:.1f} s; what follows measures smaller objects than a real "
            f"cluster would hold): then {listprobe.describe(self.services_after)} for the services' page and "
            f"{listprobe.describe(self.agent_after)} for an agent's list."
        )


@dataclass(frozen=True)
class _NodeSeed:
    """What one node gets: the spec and status bodies, and the spec's generation."""

    spec: dict[str, Any]
    status: dict[str, Any]


@dataclass
class Seeder:
    """Creates the jobs, then writes every NodeImage's spec and status (the NodeImages must exist)."""

    api: kubernetes.client.ApiClient
    namespace: str
    etcd: EtcdStore | None = None
    """When set, NodeImages other than the template are written straight into etcd (see the module docstring)."""
    tag_policy: tagpolicy.TagPolicySettings = field(default_factory=tagpolicy.TagPolicySettings)
    rng: random.Random = field(default_factory=random.Random)
    jobs: list[SeededJob] = field(default_factory=list)
    managed_fields: bool = True
    """False once `strip_managed_fields` ran: later etcd writes leave them out too."""
    _template: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    def create_jobs(self, specs: Mapping[str, Mapping[str, Any]]) -> list[SeededJob]:
        """Create the jobs (finalizer and trace context already set, as after the scheduler's first sight)."""
        images = SimulatedImages(SimulatedRuntime(SimulationSettings(pull_latency=0.0)))
        for name, spec in specs.items():
            metadata = {
                "name": name,
                "finalizers": [constants.JOB_FINALIZER],
                "annotations": {constants.ANNOTATION_TRACE_CONTEXT: tracecontext.new_traceparent()},
            }
            body = {"apiVersion": constants.API_VERSION, "kind": constants.KIND_IMAGE_PULL_JOB, "metadata": metadata}
            body["spec"] = dict(spec)
            created = self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "imagepulljobs", body)
            job = ImagePullJob.from_dict(created)
            entry = imageref.parse(job.spec.image).nodeimage_entry()
            runtime_id = _runtime_id(images, imageref.from_nodeimage_entry(entry.image, entry.tag).pullable())
            self.jobs.append(SeededJob(job, entry, f"{entry.image}@{runtime_id}"))
        return self.jobs

    def seed(
        self,
        node_names: Sequence[str],
        *,
        expiring: Sequence[Expiring] = (),
        result: SeedResult | None = None,
        workers: int = WORKERS,
    ) -> SeedResult:
        """Write the nodes' tag entries and statuses (nodes with an expiring tag last); adds to `result`."""
        result = result or SeedResult()
        started = time.monotonic()
        last = {e.node for e in expiring}
        ordinary = [name for name in node_names if name not in last]
        if self._template is None and ordinary:
            self._template = self._seed_through_api(ordinary.pop(0), {}, result)
        template = self._template or {}
        with futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda node: self._seed_one(node, template, {}, result), ordinary))
            for node in sorted(last):
                due = self._due(node, expiring)
                self._seed_one(node, template, due, result)
        result.seconds += time.monotonic() - started
        return result

    @staticmethod
    def _due(node: str, expiring: Sequence[Expiring]) -> dict[str, datetime.datetime]:
        """The node's expiring jobs and when their TTL runs out (from now: the rest of the seed is written)."""
        now = _now()
        return {e.job: now + datetime.timedelta(seconds=e.after) for e in expiring if e.node == node}

    def make_listable(self, kubeconfig: Path, node_names: Sequence[str], *, limit: float) -> Listability:
        """Probe the lists the services and agents start with; drop `managedFields` if a page cannot be served.

        `node_names`: the seeded nodes; the agent's list is probed for the first of them.
        """
        out = Listability()
        agent = f"metadata.name={node_names[0]}"
        out.services = listprobe.list_times(kubeconfig, limit=limit)
        out.agent = listprobe.list_times(kubeconfig, field_selector=agent, limit=limit)
        page = out.services.from_etcd
        if page is not None and page < listprobe.SERVICE_READ_TIMEOUT:
            return out
        out.stripped_seconds = self.strip_managed_fields(node_names)
        out.services_after = listprobe.list_times(kubeconfig, limit=limit)
        out.agent_after = listprobe.list_times(kubeconfig, field_selector=agent, limit=limit)
        return out

    def strip_managed_fields(self, node_names: Sequence[str], *, workers: int = WORKERS) -> float:
        """Drop `managedFields` from the stored NodeImages (etcd only); returns the seconds it took.

        For when the apiserver cannot serve a list page of the seeded objects within the services' read
        timeout: reading `managedFields` back from etcd is most of that cost (see docs/benchmarks.md).
        """
        assert self.etcd is not None
        etcd, key = self.etcd, etcdstore.resource_prefix(GROUP, "nodeimages")

        def strip(node: str) -> None:
            stored = etcd.get(key + node)
            if stored is not None and stored["metadata"].pop("managedFields", None) is not None:
                etcd.put(key + node, stored)

        started = time.monotonic()
        self.managed_fields = False
        with futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(strip, node_names))
        return time.monotonic() - started

    def _seed_one(
        self, node: str, template: dict[str, Any], due: Mapping[str, datetime.datetime], result: SeedResult
    ) -> None:
        if self.etcd is None:
            self._seed_through_api(node, due, result)
        else:
            self._seed_into_etcd(node, template, due, result)

    def _seed_through_api(self, node: str, due: Mapping[str, datetime.datetime], result: SeedResult) -> dict[str, Any]:
        """Spec merge-patch, then status merge-patch, as the scheduler and an agent would; the object after."""
        current = self.custom.get_cluster_custom_object(GROUP, VERSION, "nodeimages", node)
        generation = int(current["metadata"]["generation"])
        seed = self._node_seed(node, current["metadata"].get("labels") or {}, generation + 1, due, result)
        written = self.custom.patch_cluster_custom_object(GROUP, VERSION, "nodeimages", node, {"spec": seed.spec})
        if int(written["metadata"]["generation"]) != generation + 1:
            raise RuntimeError(f"NodeImage {node}: the spec write gave generation {written['metadata']['generation']}")
        after: dict[str, Any] = self.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, "nodeimages", node, {"status": seed.status}
        )
        with self._lock:
            result.api_writes += 2
            result.object_bytes = len(json.dumps(after))
        return after

    def _seed_into_etcd(
        self, node: str, template: Mapping[str, Any], due: Mapping[str, datetime.datetime], result: SeedResult
    ) -> None:
        assert self.etcd is not None
        key = etcdstore.resource_prefix(GROUP, "nodeimages")
        stored = self.etcd.get(key + node)
        if stored is None:
            raise RuntimeError(f"NodeImage {node} is not in etcd")
        generation = int(stored["metadata"]["generation"]) + 1
        seed = self._node_seed(node, stored["metadata"].get("labels") or {}, generation, due, result)
        stored["metadata"]["generation"] = generation
        if self.managed_fields:
            stored["metadata"]["managedFields"] = template["metadata"]["managedFields"]
        stored["spec"], stored["status"] = seed.spec, seed.status
        self.etcd.put(key + node, stored)
        with self._lock:
            result.etcd_writes += 1

    def _node_seed(
        self,
        node: str,
        labels: Mapping[str, str],
        generation: int,
        due: Mapping[str, datetime.datetime],
        result: SeedResult,
    ) -> _NodeSeed:
        now = _now()
        images: dict[str, ImageSpec] = {}
        times: dict[tagstate.TagKey, datetime.datetime] = {}
        placed = NodeImage(metadata=ObjectMeta(name=node, labels=dict(labels)))
        jobs = [j for j in self.jobs if targets.node_matches_spec(j.job.spec, self.namespace, placed, ())]
        for seeded in jobs:
            when = now
            planned = self._tag_entry(seeded, now)
            at = due.get(seeded.job.metadata.name)
            if at is not None:
                planned, when = _finished_long_ago(planned, at)
                with self._lock:
                    result.expiring[seeded.job.metadata.name] = (_ttl(planned), at)
            images[seeded.entry.image] = planned
            times[seeded.key] = when
        spec = NodeImageSpec(images=images).to_dict()
        typed = NodeImage(metadata=ObjectMeta(name=node, generation=generation), spec=NodeImageSpec(images=images))
        known = {seeded.key: self._succeeded(seeded, times[seeded.key]) for seeded in jobs}
        status = plan.build_status(typed, known, observed_generation=generation).to_dict()
        with self._lock:
            result.spec_bytes = max(result.spec_bytes, len(json.dumps(spec)))
            result.targets.update(seeded.job.metadata.name for seeded in jobs)
        return _NodeSeed(spec, status)

    def _tag_entry(self, seeded: SeededJob, now: datetime.datetime) -> ImageSpec:
        """The scheduler's decision for this job on a node without the tag (its `_write_tag_entry` request)."""
        job = seeded.job
        traceparent = (job.metadata.annotations or {}).get(constants.ANNOTATION_TRACE_CONTEXT)
        request = tagentries.TagRequest(
            image=seeded.entry.image,
            tag=seeded.entry.tag,
            owner=ObjectReference(
                api_version=constants.API_VERSION,
                kind=constants.KIND_IMAGE_PULL_JOB,
                namespace=job.metadata.namespace,
                name=job.metadata.name,
                uid=job.metadata.uid,
            ),
            secret_refs=(),
            new_policy=tagpolicy.new_tag_policy(job.spec, self.tag_policy, self.rng.random()),
            image_pull_policy=job.spec.image_pull_policy or "IfNotPresent",
            sandbox_config=job.spec.sandbox_config,
            trace=TraceContext(uid=job.metadata.uid, traceparent=traceparent) if traceparent else None,
        )
        planned = tagentries.plan_image_spec(NodeImage(), request, now, {job.metadata.uid: job.spec})
        assert planned is not None
        return planned

    @staticmethod
    def _succeeded(seeded: SeededJob, when: datetime.datetime) -> ImageTagStatus:
        """An agent's final status for version 0, pulled the moment the entry was written."""
        pulling = tagstate.pulling(seeded.key, 0, when)
        image_name, _, runtime_id = seeded.image_id.partition("@")
        return tagstate.succeeded(pulling, image_name=image_name, runtime_id=runtime_id, now=when)


def job_spec(index: int, parallelism: int, selector: Mapping[str, str] | None = None) -> dict[str, object]:
    """The steady state's job mix: job `index` is `Always` when even, `Never` when odd; all nodes, or `selector`'s."""
    policy = "Always" if index % 2 == 0 else "Never"
    spec: dict[str, object] = {"image": image_of(index), "parallelism": parallelism}
    spec["completionPolicy"] = {"type": policy}
    if selector is not None:
        spec["selector"] = {"matchLabels": dict(selector)}
    return spec


def image_of(index: int) -> str:
    return f"bench.local/steady-{index}/app:1"


def job_name(index: int) -> str:
    return f"job-{index}"


def settled(
    custom: kubernetes.client.CustomObjectsApi, namespace: str, targets: Mapping[str, int]
) -> Callable[[], bool]:
    """A check: every `Always` job of the mix complete, every `Never` job counting all its targets succeeded."""

    def check() -> bool:
        for index in range(len(targets)):
            name = job_name(index)
            job = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "imagepulljobs", name)
            status = job.get("status") or {}
            always = index % 2 == 0
            done = bool(status.get("completionTime")) if always else status.get("succeeded") == targets[name]
            if not done:
                return False
        return True

    return check


def _ttl(planned: ImageSpec) -> int:
    policy = planned.tags[0].pull_policy
    ttl = policy.ttl_seconds_after_finished if policy else None
    assert ttl is not None, "every tag the scheduler writes has a TTL"
    return ttl


def _finished_long_ago(planned: ImageSpec, expires: datetime.datetime) -> tuple[ImageSpec, datetime.datetime]:
    """The entry written (and, in its status, finished) one TTL before `expires`: its TTL runs out then."""
    tag = planned.tags[0]
    when = expires - datetime.timedelta(seconds=_ttl(planned))
    return dataclasses.replace(planned, tags=(dataclasses.replace(tag, created_at=when),)), when


def _runtime_id(images: SimulatedImages, reference: str) -> str:
    return images.pull_image(reference, auth=None, sandbox=None, timeout=60.0, cancel=threading.Event())


def _now() -> datetime.datetime:
    """Whole seconds, as the wire format keeps them (so the seeded times read back equal)."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)
