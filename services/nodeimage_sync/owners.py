"""Does the ImagePullJob a tag entry names still exist, with that UID? Answered mostly from memory.

Upstream asks the apiserver for every owner of every tag on every reconcile, which at thousands of NodeImages
is most of its load. We answer from the ImagePullJob informer's cache and from a memory of jobs seen deleted,
and ask the apiserver only when neither knows: a job so new that the informer has not seen it yet (dropping
its tag would undo the scheduler's work), or one deleted while this service was not watching (after a
restart). The answer to such a question is remembered, so a job deleted during a restart costs one GET, not
one per NodeImage that names it. A failed GET counts as "exists": when in doubt, keep (upstream does the same).

Only a job's identity is ever read, so that is all the job informer keeps of each job (`job_identity`), not
its dict (whose status can list every failed node).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from services.nodeimage_sync.logic.spec import OwnerKey
from services.shared.kube import errors, objects, resources, store

log = logging.getLogger(__name__)

DEFAULT_MAX_REMEMBERED = 100_000
"""Deleted jobs remembered (a few hundred bytes each); older ones are asked about again if still named."""


class OwnerResolver:
    """Decides owner existence for `logic.spec.maintain_spec`; thread-safe.

    Args:
        api: for the rare confirmation GET.
        jobs: the ImagePullJob informer's store of `job_identity`s (keys "namespace/name").
        max_remembered: bound on the memory of deleted jobs.
    """

    def __init__(
        self,
        api: objects.ObjectApi,
        jobs: store.Store[OwnerKey],
        *,
        max_remembered: int = DEFAULT_MAX_REMEMBERED,
    ) -> None:
        self._api = api
        self._jobs = jobs
        self._max = max_remembered
        self._gone: collections.OrderedDict[OwnerKey, None] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.lookups = 0
        """Confirmation GETs made so far (a metric and a test hook)."""

    def job_deleted(self, job: OwnerKey) -> None:
        """Remember a job the informer saw deleted."""
        self._remember(job)

    def resolve(self, keys: Iterable[OwnerKey]) -> dict[OwnerKey, bool]:
        """Whether each job exists with the UID in its key."""
        return {key: self.exists(key) for key in keys}

    def exists(self, key: OwnerKey) -> bool:
        """Whether the job `key` names exists with that UID; see the module docstring for how it is decided."""
        namespace, name, _ = key
        if self._jobs.get(f"{namespace}/{name}") == key:
            return True
        with self._lock:
            if key in self._gone:
                return False
        return self._confirm(key)

    def _confirm(self, key: OwnerKey) -> bool:
        namespace, name, uid = key
        self.lookups += 1
        try:
            live = self._api.get(resources.IMAGE_PULL_JOBS, name, namespace=namespace)
        except errors.NotFound:
            self._remember(key)
            return False
        except errors.KubeError as error:
            log.warning("cannot check ImagePullJob %s/%s (%s); keeping its tags for now", namespace, name, error)
            return True
        if job_identity(live)[2] == uid:
            return True
        self._remember(key)
        return False

    def _remember(self, key: OwnerKey) -> None:
        with self._lock:
            self._gone[key] = None
            self._gone.move_to_end(key)
            while len(self._gone) > self._max:
                self._gone.popitem(last=False)


def job_identity(job: Mapping[str, Any]) -> OwnerKey:
    """(namespace, name, uid) of an ImagePullJob dict: what the job informer stores of each job."""
    metadata = job.get("metadata") or {}
    return (str(metadata.get("namespace", "")), str(metadata.get("name", "")), str(metadata.get("uid", "")))
