"""Who asked the apiserver what: an audit log on the bench's apiserver, counted per service identity.

The services have no client-side request counters, and `apiserver_request_total` has no user label, so the
bench runs the apiserver with a Metadata-level audit policy (one JSON line per finished request, with the
user and verb) and counts lines per ServiceAccount in a time window. Watches count once, when they end.
"""

from __future__ import annotations

import collections
import datetime
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.controlplane import ControlPlane

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
  - level: Metadata
"""


class AuditedControlPlane(ControlPlane):
    """The local control plane with the apiserver's audit log switched on (everything else unchanged)."""

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.log"

    def _apiserver_arguments(self) -> list[str]:
        policy = self.state_dir / "audit-policy.yaml"
        policy.parent.mkdir(parents=True, exist_ok=True)
        policy.write_text(POLICY)
        return [
            *super()._apiserver_arguments(),
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",
        ]


@dataclass(frozen=True)
class Window:
    """A wall-clock interval (UTC) to count requests in."""

    start: datetime.datetime
    end: datetime.datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class RequestCount:
    """Requests of one identity in a window: all of them, and the leader-election (Lease) share."""

    total: int = 0
    leases: int = 0


HTTP_ERRORS = 400
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def count_requests(log: Path, window: Window, identities: Mapping[str, str]) -> dict[str, RequestCount]:
    """Requests received in `window`, per label of `identities` (username → label, e.g. "scheduler")."""
    totals: collections.Counter[str] = collections.Counter()
    leases: collections.Counter[str] = collections.Counter()
    for label, event in _events(log, window, identities):
        totals[label] += 1
        if (event.get("objectRef") or {}).get("resource") == "leases":
            leases[label] += 1
    return {label: RequestCount(totals[label], leases[label]) for label in set(identities.values())}


def count_writes(
    log: Path, window: Window, identities: Mapping[str, str], resource: str, *, subresource: str | None = None
) -> dict[str, int]:
    """Writes (create, update, patch, delete) to `resource` received in `window`, per label of `identities`.

    `subresource` None counts writes to the object and to every subresource; "" only to the object itself.
    """
    writes: collections.Counter[str] = collections.Counter()
    for label, event in _events(log, window, identities):
        ref = event.get("objectRef") or {}
        if event.get("verb") not in WRITE_VERBS or ref.get("resource") != resource:
            continue
        if subresource is None or ref.get("subresource", "") == subresource:
            writes[label] += 1
    return {label: writes[label] for label in set(identities.values())}


def written_objects(log: Path, window: Window, identities: Mapping[str, str]) -> dict[str, list[str]]:
    """Per label, the objects written in `window` as `resource/name[/subresource]`, repeated per write, sorted.

    A refused write (a 409 conflict, say) is listed with its status code: `nodeimages/node-1 (409)`.

    Leases (leader election renews them every few seconds) and Events (reports, not state) are left out.
    """
    written: dict[str, list[str]] = {label: [] for label in set(identities.values())}
    for label, event in _events(log, window, identities):
        ref = event.get("objectRef") or {}
        if event.get("verb") not in WRITE_VERBS or ref.get("resource") in ("leases", "events"):
            continue
        path = "/".join(part for part in (ref.get("resource"), ref.get("name"), ref.get("subresource")) if part)
        code = int((event.get("responseStatus") or {}).get("code") or 0)
        written[label].append(path if code < HTTP_ERRORS else f"{path} ({code})")
    return {label: sorted(paths) for label, paths in written.items()}


def first_write(log: Path, window: Window, username: str, resource: str, *excluded: str) -> datetime.datetime | None:
    """When `username` first wrote to `resource` (other than the objects named `excluded`) in `window`, or None."""
    times = [
        _received(event)
        for _, event in _events(log, window, {username: username})
        if event.get("verb") in WRITE_VERBS
        and (event.get("objectRef") or {}).get("resource") == resource
        and (event.get("objectRef") or {}).get("name") not in excluded
    ]
    return min(times, default=None)


def _events(log: Path, window: Window, identities: Mapping[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, audit event) of the identities' requests received in `window`, in log order."""
    with log.open() as handle:
        for line in handle:
            event = json.loads(line)
            label = identities.get(event.get("user", {}).get("username", ""))
            if label is not None and window.start <= _received(event) <= window.end:
                yield label, event


def _received(event: Mapping[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(str(event["requestReceivedTimestamp"]).replace("Z", "+00:00"))
