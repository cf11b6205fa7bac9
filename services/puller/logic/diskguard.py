"""The disk guard (design §5): refuse to start a pull while the image filesystem is nearly full.

Upstream pulls until the disk is full and the kubelet starts evicting. We check the image filesystem the
runtime reports (CRI `ImageFsInfo`) before each attempt and refuse while its free space is under the
threshold, saying how much is free and what the threshold is, so an operator knows what to clean up.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DiskSpace", "format_bytes", "refusal"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_STEP = 1024


@dataclass(frozen=True)
class DiskSpace:
    """Free space of the filesystem holding images; `mountpoint` as the runtime reports it."""

    mountpoint: str
    free_bytes: int


def format_bytes(count: int) -> str:
    """Binary units with one decimal, as `df -h` prints them: `512.0 MiB`, `1.5 GiB`."""
    value = float(count)
    for unit in _UNITS:
        if abs(value) < _STEP or unit == _UNITS[-1]:
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= _STEP
    raise AssertionError("unreachable")  # pragma: no cover


def refusal(space: DiskSpace | None, *, min_free_bytes: int) -> str | None:
    """Why a pull must not start now, or None when it may.

    Args:
        space: the image filesystem's free space; None when it could not be measured (then the pull goes
            ahead: the guard must never be the reason nothing can be pulled).
        min_free_bytes: the threshold; 0 switches the guard off.
    """
    if space is None or min_free_bytes <= 0 or space.free_bytes >= min_free_bytes:
        return None
    return (
        f"disk guard: only {format_bytes(space.free_bytes)} free on the image filesystem {space.mountpoint}, "
        f"under the threshold of {format_bytes(min_free_bytes)} (--min-free-disk); free space on the node "
        "or lower the threshold"
    )
