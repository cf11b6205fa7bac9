"""A scriptable `cri.ImageService` for worker tests: outcomes per reference, calls recorded, pulls gated."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from services.puller import cri
from services.shared.api.pulloptions import SandboxConfig


@dataclass
class FakeImages:
    """Pull outcomes are taken in order from `script[reference]` ("ok" or an error message); default "ok".

    With `gate` set, every pull waits for it (or for its cancel event), so tests can hold pulls in flight.
    """

    script: dict[str, deque[str]] = field(default_factory=dict)
    present: dict[str, cri.RuntimeImage] = field(default_factory=dict)
    gate: threading.Event | None = None
    pulls: list[tuple[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pull_image(
        self,
        reference: str,
        *,
        auth: cri.Auth | None,
        sandbox: SandboxConfig | None,
        timeout: float,
        cancel: threading.Event,
    ) -> str:
        with self.lock:
            self.pulls.append((reference, auth.username if auth else ""))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            outcome = self.script.get(reference, deque(["ok"])).popleft() if self.script.get(reference) else "ok"
        try:
            if self.gate is not None:
                while not self.gate.wait(0.01):
                    if cancel.is_set():
                        raise cri.PullCancelled(f"pulling image {reference} is canceled")
            if outcome != "ok":
                raise cri.PullFailed(outcome)
            image = cri.RuntimeImage(id=f"sha256:{abs(hash(reference)):064x}"[:71], repo_tags=(reference,))
            self.present[reference] = image
            return image.id
        finally:
            with self.lock:
                self.in_flight -= 1

    def image_status(self, reference: str) -> cri.RuntimeImage | None:
        return self.present.get(reference)

    def list_images(self) -> list[cri.RuntimeImage]:
        return list(self.present.values())

    def image_fs_info(self) -> list[cri.FilesystemUsage]:
        return []

    def version(self) -> cri.RuntimeVersion:
        return cri.RuntimeVersion("fake", "0", "v1")
