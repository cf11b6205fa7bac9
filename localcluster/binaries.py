"""Where the upstream test binaries live, and building them when they are missing.

The versions are pinned once, in `localcluster/versions.env`; the binaries are built from Go modules by
`localcluster/build-binaries.sh` into a cache outside the repository (`~/.cache/prepull-testbin`, or
`$PREPULL_BIN_CACHE`), one directory per version pair. Lookups never build: only `ensure_binaries` does, and
it holds a file lock so that two test processes starting at once do not run two builds of the same tree.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS_FILE = HERE / "versions.env"
BUILD_SCRIPT = HERE / "build-binaries.sh"
CACHE_ENV = "PREPULL_BIN_CACHE"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kubectl", "etcd")
# A cold build of all four on 2 cores takes 20-40 minutes; give it room before calling it stuck.
BUILD_TIMEOUT_SECONDS = 3 * 3600


class BinariesUnavailableError(RuntimeError):
    """The build script ran but a binary is still missing."""


@dataclass(frozen=True)
class Versions:
    """The pinned upstream versions, as written in versions.env (with the leading `v`)."""

    kubernetes: str
    etcd: str


def read_versions(path: Path = VERSIONS_FILE) -> Versions:
    """Parse the `KEY=value` lines of versions.env; comments and blank lines are skipped.

    Raises:
        KeyError: when K8S_VERSION or ETCD_VERSION is not set in the file.
    """
    values: dict[str, str] = {}
    for raw_line in path.read_text().splitlines():
        line = raw_line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("\"'")
    return Versions(kubernetes=values["K8S_VERSION"], etcd=values["ETCD_VERSION"])


def cache_root() -> Path:
    """The cache directory shared by all checkouts: `$PREPULL_BIN_CACHE`, else `~/.cache/prepull-testbin`."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path.home() / ".cache" / "prepull-testbin"


def bin_dir(versions: Versions | None = None) -> Path:
    """The directory the build script writes for this version pair (same naming as build-binaries.sh)."""
    pinned = versions or read_versions()
    return cache_root() / f"k8s-{pinned.kubernetes}-etcd-{pinned.etcd}"


def missing_binaries(directory: Path) -> list[str]:
    """Names from BINARIES that are not an executable file in `directory`."""
    return [name for name in BINARIES if not os.access(directory / name, os.X_OK)]


def ensure_binaries() -> Path:
    """Return the binary directory, running the (idempotent) build script first when anything is missing.

    Raises:
        BinariesUnavailableError: when the build finished but binaries are still missing.
        subprocess.CalledProcessError: when the build script fails (its output went to our stderr).
    """
    directory = bin_dir()
    if not missing_binaries(directory):
        return directory
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if missing_binaries(directory):
            env = dict(os.environ) | {CACHE_ENV: str(root)}
            subprocess.run(
                ["bash", str(BUILD_SCRIPT)],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
                timeout=BUILD_TIMEOUT_SECONDS,
            )
    still_missing = missing_binaries(directory)
    if still_missing:
        raise BinariesUnavailableError(
            f"build-binaries.sh finished but {', '.join(still_missing)} missing in {directory}"
        )
    return directory


def binary(name: str) -> Path:
    """The path of one binary, building the set first when needed."""
    if name not in BINARIES:
        raise ValueError(f"unknown binary {name!r}; expected one of {', '.join(BINARIES)}")
    return ensure_binaries() / name
