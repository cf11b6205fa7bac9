"""Lease-based leader election, so only one replica of scheduler or nodeimage_sync reconciles at a time.

Each replica runs a `LeaderElector` with its own identity (the Pod name). Candidates try to acquire the
Lease every `retry_period`; the leader renews it every `retry_period`, and steps down when it could not
renew for `renew_deadline` (which is shorter than `lease_duration`, so it stops before anyone else may
start: at most one leader at any moment, provided clocks run at similar rates). A leader stopped cleanly
releases the Lease, so the next one takes over at once instead of after `lease_duration`. See `leases` for
the record and the rules; defaults are client-go's (15 s / 10 s / 2 s). The services configure and build their
elector through `services.shared.leadership` (the `--leader-elect*` flags, named as kube-controller-manager's).

Callbacks run on the elector's thread and must return quickly (start or stop workers, flip readiness);
`is_leader()` is the cheap check a worker makes before acting, and turns False as soon as the renew deadline
passes, even if the elector thread is still waiting for an answer from the apiserver.
"""

from __future__ import annotations

import logging
import math
import random
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from services.shared import clock as clocks
from services.shared.kube import errors, leases, objects, resources

logger = logging.getLogger(__name__)


def default_identity(pod_name: str | None = None) -> str:
    """A candidate identity unique per process: the Pod name when known, else host name plus a random suffix.

    Two replicas with the same identity would both believe they hold the Lease; the suffix keeps processes on
    one host (the local cluster, `make run`) apart, as client-go does.
    """
    return pod_name or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class ElectionSettings:
    """Timing of the election, in seconds."""

    lease_duration: float = 15.0
    """How long others wait after the last renewal they saw before taking over (rounded up to seconds)."""

    renew_deadline: float = 10.0
    """How long a leader keeps trying to renew before it steps down; must be below `lease_duration`."""

    retry_period: float = 2.0
    """Pause between attempts to acquire or renew (+20 % jitter while acquiring)."""

    release_on_stop: bool = True
    """Clear the holder on a clean stop, so a successor need not wait for expiry."""

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(f"need lease_duration > renew_deadline > retry_period > 0, got {self}")


class LeaderElector:
    """Campaigns for one Lease on a background thread until stopped.

    Args:
        api: where the Lease lives.
        namespace, name: the Lease.
        identity: this candidate, unique among candidates (e.g. the Pod name).
        settings: timing; defaults when None.
        on_started_leading: called when this candidate becomes leader.
        on_stopped_leading: called when it stops leading (lost the Lease, or stopped).
        clock: time source; the system clock when None.
    """

    def __init__(
        self,
        api: objects.ObjectApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        settings: ElectionSettings | None = None,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        clock: clocks.Clock | None = None,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._name = name
        self.identity = identity
        self._settings = settings or ElectionSettings()
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._clock = clock or clocks.SystemClock()
        self._rng = random.Random()
        self._stopping = threading.Event()
        self._release = self._settings.release_on_stop
        self._thread: threading.Thread | None = None
        self._leading = False
        self._last_renew = -math.inf
        self._observed: leases.LeaseRecord | None = None
        self._observed_at = 0.0

    def start(self) -> None:
        """Start campaigning on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name=f"leader-election {self._name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0, *, release: bool | None = None) -> None:
        """Stop campaigning; if leading, call on_stopped_leading and (unless `release` is False) release.

        `release=False` leaves the Lease held, as a crashed leader would: successors wait for expiry.
        """
        if release is not None:
            self._release = release
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def is_leader(self) -> bool:
        """True while this candidate leads and its last renewal is within the renew deadline."""
        return self._leading and self._clock.monotonic() - self._last_renew < self._settings.renew_deadline

    # --- the loop ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while self._acquire():
            self._lead()

    def _acquire(self) -> bool:
        while not self._stopping.is_set():
            if self._try_acquire_or_renew():
                return True
            self._stopping.wait(self._settings.retry_period * (1.0 + 0.2 * self._rng.random()))
        return False

    def _lead(self) -> None:
        self._last_renew = self._clock.monotonic()
        self._set_leading(True)
        try:
            while not self._stopping.wait(self._settings.retry_period):
                if self._try_acquire_or_renew():
                    self._last_renew = self._clock.monotonic()
                elif self._clock.monotonic() - self._last_renew >= self._settings.renew_deadline:
                    logger.warning("%s: could not renew Lease %s in time; stepping down", self.identity, self._name)
                    return
        finally:
            self._set_leading(False)
            if self._stopping.is_set() and self._release:
                self._release_lease()

    def _set_leading(self, leading: bool) -> None:
        self._leading = leading
        logger.info(
            "%s: %s Lease %s/%s", self.identity, "leading" if leading else "not leading", self._namespace, self._name
        )
        callback = self._on_started if leading else self._on_stopped
        if callback is not None:
            try:
                callback()
            except Exception:
                logger.exception("%s: leadership callback failed", self.identity)

    # --- talking to the apiserver ------------------------------------------------------------------------

    def _try_acquire_or_renew(self) -> bool:
        try:
            return self._write_record()
        except errors.KubeError as error:
            logger.debug("%s: acquire/renew of Lease %s failed: %s", self.identity, self._name, error)
            return False

    def _write_record(self) -> bool:
        try:
            lease = self._api.get(
                resources.LEASES, self._name, namespace=self._namespace, timeout=self._request_timeout
            )
        except errors.NotFound:
            return self._create()
        observed = leases.LeaseRecord.from_lease(lease)
        self._observe(observed)
        expired = self._clock.monotonic() >= self._observed_at + observed.lease_duration_seconds
        record = leases.next_record(
            observed,
            identity=self.identity,
            lease_duration_seconds=self._duration_seconds,
            now=self._clock.now(),
            expired=expired,
        )
        if record is None:
            return False
        self._patch(record, resource_version=lease["metadata"]["resourceVersion"])
        return True

    def _create(self) -> bool:
        record = leases.next_record(
            None,
            identity=self.identity,
            lease_duration_seconds=self._duration_seconds,
            now=self._clock.now(),
            expired=True,
        )
        assert record is not None  # a missing Lease is always acquirable
        body = {"metadata": {"name": self._name, "namespace": self._namespace}, "spec": record.to_spec()}
        self._api.create(resources.LEASES, body, namespace=self._namespace, timeout=self._request_timeout)
        self._observe(record)
        return True

    def _patch(self, record: leases.LeaseRecord, *, resource_version: str) -> None:
        self._api.patch(
            resources.LEASES,
            self._name,
            {"spec": record.to_spec()},
            namespace=self._namespace,
            resource_version=resource_version,
            timeout=self._request_timeout,
        )
        self._observe(record)

    def _release_lease(self) -> None:
        try:
            lease = self._api.get(
                resources.LEASES, self._name, namespace=self._namespace, timeout=self._request_timeout
            )
            record = leases.LeaseRecord.from_lease(lease)
            if record.holder == self.identity:
                self._patch(
                    leases.released(record, now=self._clock.now()),
                    resource_version=lease["metadata"]["resourceVersion"],
                )
                logger.info("%s: released Lease %s/%s", self.identity, self._namespace, self._name)
        except errors.KubeError as error:
            logger.warning("%s: could not release Lease %s: %s", self.identity, self._name, error)

    def _observe(self, record: leases.LeaseRecord) -> None:
        """Remember when the record last changed: expiry counts from then, on our monotonic clock."""
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock.monotonic()

    @property
    def _duration_seconds(self) -> int:
        return math.ceil(self._settings.lease_duration)

    @property
    def _request_timeout(self) -> float:
        """Each request must answer well within the renew deadline, or renewing cannot succeed in time."""
        return self._settings.renew_deadline / 2
