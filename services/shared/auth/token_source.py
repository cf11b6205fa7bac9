"""Client side: present the Pod's projected ServiceAccount token on every call, re-reading it when rotated.

The kubelet writes the token to a file and replaces it before it expires (at 80% of its life; with the
`..data` symlink swap, so the file's identity changes). `FileTokenSource` re-reads the file whenever its
modification time, size or inode changes, and otherwise serves the copy it has, so a call costs one `stat`.
A missing or empty file raises `TokenUnavailable` at call time, with the path, so the puller's log says
what is wrong before the server would answer UNAUTHENTICATED.

Two ways to attach it, both giving `authorization: Bearer <token>` metadata:

- `BearerTokenInterceptor`, a client interceptor, works on any channel. Our in-cluster channels are plaintext
  (design §2 has no TLS between services), and gRPC refuses to send call credentials over an insecure
  channel, so this is what the services use. The exposure is bounded: the token is audience-bound (useless
  against the API server or another of our APIs), bound to one Pod, and short-lived.
- `call_credentials()` gives `grpc.CallCredentials` (an `AuthMetadataPlugin`) for channels with TLS, or with
  `grpc.local_channel_credentials()` on loopback and Unix sockets (where local credentials satisfy gRPC's
  "secure channel" rule without certificates). Prefer it whenever the channel is secure: gRPC then guarantees
  the token is never sent in clear.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from services.shared.auth import metadata as auth_metadata


class TokenUnavailable(RuntimeError):  # noqa: N818 -- reads as the condition it reports
    """The token file is missing, unreadable or empty (the message names the path, never the content)."""


class FileTokenSource:
    """The current token in a file that something else (the kubelet) rewrites."""

    def __init__(self, path: Path | str) -> None:
        """Read lazily: the file may appear after the process starts."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._token = ""

    def token(self) -> str:
        """The token, re-read if the file changed since the last read.

        Raises:
            TokenUnavailable: the file is missing, unreadable or empty.
        """
        with self._lock:
            try:
                stat = self.path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
                if stamp != self._stamp:
                    self._token, self._stamp = self.path.read_text().strip(), stamp
            except OSError as error:
                raise TokenUnavailable(f"cannot read token file {self.path}: {error.strerror}") from None
            if not self._token:
                raise TokenUnavailable(f"token file {self.path} is empty")
            return self._token

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The `authorization` metadata entry for the current token."""
        return (auth_metadata.authorization_entry(self.token()),)


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]  # grpc ships no type stubs
):
    """`grpc.ClientCallDetails` with our metadata (gRPC offers no constructor for it)."""


class BearerTokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]  # grpc ships no type stubs
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds `authorization: Bearer <token>` from `source` to every call on the channel (all four call kinds)."""

    def __init__(self, source: FileTokenSource) -> None:
        """Use `source` for every call."""
        self._source = source

    def _with_token(self, details: grpc.ClientCallDetails) -> _CallDetails:
        metadata = [(k, v) for k, v in details.metadata or () if k.lower() != auth_metadata.AUTHORIZATION_METADATA]
        return _CallDetails(
            details.method,
            details.timeout,
            [*metadata, *self._source.metadata()],
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        """Send the unary call with the token."""
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        """Send the response-streaming call with the token."""
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, requests: Iterator[Any]
    ) -> Any:
        """Send the request-streaming call with the token."""
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, requests: Iterator[Any]
    ) -> Any:
        """Send the bidirectional call with the token."""
        return continuation(self._with_token(details), requests)


class _TokenPlugin(grpc.AuthMetadataPlugin):  # type: ignore[misc]  # grpc ships no type stubs
    """Call credentials reading `source` for each call; errors fail the call instead of sending no token."""

    def __init__(self, source: FileTokenSource) -> None:
        self._source = source

    def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
        try:
            metadata = self._source.metadata()
        except TokenUnavailable as error:
            callback((), error)
            return
        callback(metadata, None)


def call_credentials(source: FileTokenSource) -> grpc.CallCredentials:
    """Call credentials for TLS or local channels (see the module docstring for when to prefer them)."""
    return grpc.metadata_call_credentials(_TokenPlugin(source), name="kubernetes-bearer-token")
