"""A Docker distribution registry on loopback, open or behind htpasswd, for the local cluster's nodes to pull from.

Each `Registry` is one Debian `docker-registry serve CONFIG` process on `127.0.0.1:<free port>` with its storage
in its own directory, so tests, the demo and benchmarks push images into it and containerd pulls them over plain
HTTP. The authenticated variant uses the registry's htpasswd auth, which accepts only bcrypt entries; its password
is random per instance and never printed (`Credentials` hides it from `repr`).
"""

from __future__ import annotations

import secrets
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from localcluster.process import ManagedProcess, free_port, wait_until

REGISTRY_BINARY = "docker-registry"
HTPASSWD_REALM = "prepull-local"


@dataclass(frozen=True)
class Credentials:
    """A registry user name and password; the password never shows in `repr` or logs."""

    username: str
    password: str = field(repr=False)


class Registry:
    """One registry process: its address, its credentials when it requires them, and its lifecycle.

    Args:
        name: Short label used for the log file and error messages (e.g. "open", "auth").
        base_dir: Directory that holds this registry's config, storage, htpasswd file and log.
        auth: When true, every request needs HTTP basic auth with `credentials`.
        port: Port to listen on; a free one is picked when omitted. It stays the same across restarts.
    """

    def __init__(self, name: str, base_dir: Path, *, auth: bool = False, port: int | None = None) -> None:
        self.name = name
        self.base_dir = base_dir
        self.port = port or free_port()
        self.credentials: Credentials | None = (
            Credentials(username="prepull", password=secrets.token_urlsafe(18)) if auth else None
        )
        self.storage_dir = base_dir / "storage"
        self.config_path = base_dir / "config.yml"
        self.htpasswd_path = base_dir / "htpasswd"
        self.process = ManagedProcess(
            name=f"registry-{name}",
            argv=[self._binary(), "serve", str(self.config_path)],
            log_path=base_dir / "registry.log",
        )

    @property
    def address(self) -> str:
        """`host:port` as it appears in image references (`127.0.0.1:5000/repo:tag`)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL of the registry API (plain HTTP)."""
        return f"http://{self.address}"

    def start(self, *, timeout: float = 30.0) -> None:
        """Write the config (and htpasswd) and start the registry; return once `/v2/` answers."""
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self._write_htpasswd()
        self.config_path.write_text(yaml.safe_dump(self._config(), sort_keys=False))
        self.process.start()
        wait_until(self._ready_or_exited, timeout=timeout, what=f"registry {self.name} at {self.address}")
        if not self.process.alive():
            raise RuntimeError(f"registry {self.name} exited at start:\n{self.log_tail(15)}")

    def stop(self) -> None:
        """Stop the registry; its storage stays, so `start` serves the same images again."""
        self.process.stop()

    def restart(self, *, timeout: float = 30.0) -> None:
        """Stop and start on the same port and storage."""
        self.stop()
        self.start(timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the registry's log, for failure reports."""
        return self.process.log_tail(lines)

    def _ready_or_exited(self) -> bool:
        """Stop waiting when the process exited, or when `GET /v2/` answers 200 (open) or 401 (auth)."""
        if not self.process.alive():
            return True
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as response:
                status: int = response.status
                return status == 200
        except urllib.error.HTTPError as error:
            error.close()  # an HTTPError holds its connection open until closed
            return error.code == 401 and self.credentials is not None

    def _write_htpasswd(self) -> None:
        """The registry's htpasswd auth accepts bcrypt hashes only."""
        if self.credentials is None:
            return
        hashed = bcrypt.hashpw(self.credentials.password.encode(), bcrypt.gensalt(rounds=5)).decode()
        self.htpasswd_path.write_text(f"{self.credentials.username}:{hashed}\n")
        self.htpasswd_path.chmod(0o600)

    def _config(self) -> dict[str, Any]:
        """The registry configuration (schema version 0.1): loopback only, filesystem storage, deletes allowed."""
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.address, "secret": secrets.token_hex(16)},
        }
        if self.credentials is not None:
            config["auth"] = {"htpasswd": {"realm": HTPASSWD_REALM, "path": str(self.htpasswd_path)}}
        return config

    @staticmethod
    def _binary() -> str:
        """The registry binary from Debian's `docker-registry` package."""
        path = shutil.which(REGISTRY_BINARY)
        if path is None:
            raise FileNotFoundError(f"{REGISTRY_BINARY} not found: install Debian's docker-registry package")
        return path
