"""The puller's Pod-bound ServiceAccount tokens, read from the files the kubelet keeps fresh.

The kubelet (or the local cluster harness) rewrites a projected token file before the token expires, so
the file is read again whenever it changed (inode, size or mtime); an unchanged file costs one `stat`. The
token is sent as a bearer token to our own services (Credentials, NodeInventory), one audience per file.
It is never logged and never part of an error message.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["TokenFile", "TokenUnavailable"]


class TokenUnavailable(Exception):  # noqa: N818 -- a condition the caller reports, not a bug
    """The token file is missing, unreadable or empty; the message names the file, never a token."""


class TokenFile:
    """A token file, re-read when it changes. Thread-safe."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Remember `path`; nothing is read until `token()`."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self._identity: tuple[int, int, int] | None = None
        self._token = ""

    def token(self) -> str:
        """The current token.

        Raises:
            TokenUnavailable: the file cannot be read or holds no token.
        """
        try:
            stat = self.path.stat()
            identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            with self._lock:
                if identity != self._identity:
                    self._token = self.path.read_text().strip()
                    self._identity = identity
                token = self._token
        except OSError as error:
            raise TokenUnavailable(f"cannot read the token file {self.path}: {error.strerror}") from None
        if not token:
            raise TokenUnavailable(f"the token file {self.path} is empty")
        return token
