"""Registry credentials, fetched just in time from the scheduler's `Credentials` service (design §3).

The puller has no access to Secrets. Just before pulling an image whose NodeImage entry names pull secrets,
it asks `Credentials.GetPullCredentials`, presenting its Pod-bound token for the `prepull.io/credentials`
audience; the scheduler answers with the credentials of the jobs that assigned the image to this node.
When `--scheduler-address` is empty (a standalone node, or tests) there is no one to ask and pulls go
anonymously (or with the runtime's own configured credentials).

Credentials live only in the returned `cri.Auth` values for the duration of one pull: never cached, logged or
put in a message. Errors name the scheduler and the status code, nothing else.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import grpc

from services.puller import cri
from services.shared.auth import token_source
from services.shared.gen.prepull.v1 import credentials_pb2, credentials_pb2_grpc
from services.shared.rpc import channels

__all__ = ["AnonymousCredentials", "CredentialsClient", "CredentialsSource", "CredentialsUnavailable"]

log = logging.getLogger(__name__)

CALL_TIMEOUT_SECONDS = 10.0
"""A credentials lookup is a few reads in the scheduler's caches; longer means it is in trouble."""


class CredentialsUnavailable(cri.PullFailed):
    """The credentials could not be fetched; the pull attempt fails with this message and is retried."""


class CredentialsSource(Protocol):
    """Where a worker gets the credentials for one image (empty: pull anonymously)."""

    def credentials_for(self, reference: str) -> list[cri.Auth]:
        """Credentials to try in order for `reference`.

        Raises:
            CredentialsUnavailable: the lookup failed.
        """
        ...


class AnonymousCredentials:
    """No credentials service configured: every pull is anonymous."""

    def credentials_for(self, reference: str) -> list[cri.Auth]:
        """Always empty."""
        return []


class CredentialsClient:
    """`CredentialsSource` over gRPC to the scheduler.

    Args:
        address: the scheduler's gRPC target, e.g. `dns:///prepull-scheduler.prepull-system:9090`.
        token: the puller's token file for audience `prepull.io/credentials`.
    """

    def __init__(self, address: str, token: token_source.FileTokenSource) -> None:
        self.address = address
        self._token = token
        self._channel = channels.create_channel(address)
        self._stub: Any = credentials_pb2_grpc.CredentialsStub(self._channel)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def credentials_for(self, reference: str) -> list[cri.Auth]:
        """See `CredentialsSource.credentials_for`."""
        try:
            metadata = self._token.metadata()
        except token_source.TokenUnavailable as error:
            raise CredentialsUnavailable(f"cannot fetch registry credentials for {reference}: {error}") from None
        try:
            response = self._stub.GetPullCredentials(
                credentials_pb2.GetPullCredentialsRequest(image=reference),
                metadata=metadata,
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.RpcError as error:
            raise CredentialsUnavailable(
                f"cannot fetch registry credentials for {reference} from the scheduler at {self.address}: "
                f"{error.code().name}: {error.details()}"
            ) from None
        found = [_auth(credential) for credential in response.credentials]
        log.debug("credentials for %s: %s", reference, [auth.source for auth in found])
        return found


def _auth(credential: Any) -> cri.Auth:
    """The credential as CRI auth. `server` is not passed on as `server_address`: it is the secret's key (a
    host, a path prefix or a URL), and containerd ignores credentials whose address is not exactly the host."""
    source = f"{credential.source.namespace}/{credential.source.name}" if credential.HasField("source") else ""
    return cri.Auth(
        username=credential.username,
        password=credential.password,
        auth=credential.auth,
        identity_token=credential.identity_token,
        registry_token=credential.registry_token,
        source=source,
    )
