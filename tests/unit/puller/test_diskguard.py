"""The disk guard's decision and message."""

from __future__ import annotations

import pytest

from services.puller.logic import diskguard

GIB = 1 << 30


@pytest.mark.parametrize(
    ("space", "threshold"),
    [
        pytest.param(diskguard.DiskSpace("/var/lib/containerd", 5 * GIB), GIB, id="enough"),
        pytest.param(diskguard.DiskSpace("/var/lib/containerd", GIB), GIB, id="exactly-threshold"),
        pytest.param(diskguard.DiskSpace("/var/lib/containerd", 0), 0, id="guard-off"),
        pytest.param(None, GIB, id="unmeasurable-allows"),
    ],
)
def test_pull_allowed(space: diskguard.DiskSpace | None, threshold: int) -> None:
    assert diskguard.refusal(space, min_free_bytes=threshold) is None


def test_refusal_says_free_space_mountpoint_and_threshold() -> None:
    message = diskguard.refusal(diskguard.DiskSpace("/var/lib/containerd", 512 << 20), min_free_bytes=2 * GIB)
    assert message is not None
    assert "512.0 MiB free" in message
    assert "/var/lib/containerd" in message
    assert "threshold of 2.0 GiB" in message


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536 << 20, "1.5 GiB"), (1 << 60, "1.0 EiB")],
)
def test_format_bytes(count: int, text: str) -> None:
    assert diskguard.format_bytes(count) == text
