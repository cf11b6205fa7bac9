"""Who asked the apiserver what: an audit log on the bench's apiserver, counted per service identity.

The services have no client-side request counters, and `apiserver_request_total` has no user label, so the
bench runs the apiserver with a Metadata-level audit policy (one JSON line per finished request, with the
user and verb) and counts lines per ServiceAccount in a time window. Watches count once, when they end.
"""

from __future__ import annotations

import collections
import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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


def count_requests(log: Path, window: Window, identities: Mapping[str, str]) -> dict[str, RequestCount]:
    """Requests received in `window`, per label of `identities` (username → label, e.g. "scheduler")."""
    totals: collections.Counter[str] = collections.Counter()
    leases: collections.Counter[str] = collections.Counter()
    with log.open() as handle:
        for line in handle:
            event = json.loads(line)
            label = identities.get(event.get("user", {}).get("username", ""))
            if label is None:
                continue
            received = datetime.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
            if not window.start <= received <= window.end:
                continue
            totals[label] += 1
            if (event.get("objectRef") or {}).get("resource") == "leases":
                leases[label] += 1
    return {label: RequestCount(totals[label], leases[label]) for label in set(identities.values())}
