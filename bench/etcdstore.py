"""The bench cluster's etcd, read and written directly through its JSON gateway (`/v3/kv/...`).

Only the seeding of large steady states uses this (`bench.seeding`): the local etcd listens on plain HTTP on
loopback, and the apiserver stores custom resources there as JSON under `/registry/<group>/<resource>/`.
A value put here reaches the apiserver's watch cache, and every watcher, like any other change.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from dataclasses import dataclass
from typing import Any

TIMEOUT = 30.0


def resource_prefix(group: str, resource: str) -> str:
    """Where the apiserver keeps the cluster-scoped objects of `resource` (default `--etcd-prefix`)."""
    return f"/registry/{group}/{resource}/"


@dataclass(frozen=True)
class EtcdStore:
    url: str
    """The client URL, e.g. `http://127.0.0.1:2379`."""

    def get(self, key: str) -> dict[str, Any] | None:
        """The object stored under `key`, or None."""
        answer = self._call("/v3/kv/range", {"key": _encode(key.encode())})
        kvs = answer.get("kvs", [])
        return json.loads(base64.b64decode(kvs[0]["value"])) if kvs else None

    def put(self, key: str, stored: dict[str, Any]) -> None:
        """Store `stored` (an object as the apiserver keeps it: no resourceVersion) under `key`."""
        value = json.dumps(stored, separators=(",", ":")).encode()
        self._call("/v3/kv/put", {"key": _encode(key.encode()), "value": _encode(value)})

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer


def _encode(data: bytes) -> str:
    return base64.b64encode(data).decode()
