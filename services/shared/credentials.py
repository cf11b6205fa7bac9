"""Registry credentials from image pull secrets, matched to an image the way the kubelet matches them.

The scheduler answers a puller's `GetPullCredentials` from the job's own `pullSecrets` (design §3). A user who
has pods pulling from a private registry already has secrets that the kubelet understands; they must work here
unchanged, and pick the same credentials for the same image. So this module follows the kubelet's
`credentialprovider` keyring:

* Secret types `kubernetes.io/dockerconfigjson` (key `.dockerconfigjson`, a Docker `config.json` with an
  `auths` object) and `kubernetes.io/dockercfg` (key `.dockercfg`, the `auths` map itself). Values may be
  base64 as the API returns them, raw JSON text or bytes, or an already parsed object.
* Each registry entry may hold `auth` (base64 of `username:password`, padded or not; it wins over
  `username`/`password`), `username`/`password`, and `identitytoken`/`registrytoken`, which CRI accepts
  although the kubelet ignores them. Entries with none of these are skipped: `docker login` with a credential
  store writes such empty entries (the kubelet would send them as an empty, i.e. anonymous, login).
* A registry key is a URL or a bare `host[:port][/path]`; scheme and user info are dropped, and `/v1/` or `/v2/`
  right after the host means the host itself (`https://index.docker.io/v1/` is `index.docker.io`). Keys that
  name no registry (`not a host!`, `ftp://…`) can match no image and are skipped, as the kubelet skips them.
* A key matches an image when the ports are equal (no port matches only no port), the hosts have the same number
  of dot-separated labels and each label matches (`*` and `?` are globs within one label, so `*.example.com`
  matches `a.example.com` but neither `example.com` nor `a.b.example.com`), and the key's path is a prefix of
  the image's repository path.
* All matching credentials are returned, the most specific first: keys in reverse string order (longer paths
  before their prefixes, exact labels before `*`), credentials of one key in the order of the secrets given.
* Only when nothing matched and the image is on Docker Hub, keys naming Docker Hub by another name
  (`index.docker.io`, `registry-1.docker.io`) are used, as the kubelet falls back to `index.docker.io`.

Deliberate differences from the kubelet, each stricter or more predictable: a key's path must end at a `/`
boundary of the repository (`quay.io/team` does not match `quay.io/teamb/app`; the kubelet compares raw string
prefixes); host names compare case-insensitively; malformed secrets are reported (the kubelet logs and skips
them) through `InvalidPullSecret`, whose message names the secret and the problem, never a credential.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from services.shared.api import imageref

DOCKER_CONFIG_JSON_TYPE: Final = "kubernetes.io/dockerconfigjson"
DOCKER_CONFIG_JSON_KEY: Final = ".dockerconfigjson"
DOCKERCFG_TYPE: Final = "kubernetes.io/dockercfg"
DOCKERCFG_KEY: Final = ".dockercfg"

SECRET_DATA_KEYS: Final = {DOCKER_CONFIG_JSON_TYPE: DOCKER_CONFIG_JSON_KEY, DOCKERCFG_TYPE: DOCKERCFG_KEY}
"""The data key each pull secret type keeps its Docker configuration under."""

DOCKER_HUB_HOSTS: Final = frozenset({imageref.DOCKER_HUB, imageref.LEGACY_DOCKER_HUB, "registry-1.docker.io"})
"""Names of Docker Hub: references say `docker.io`, `docker login` writes `https://index.docker.io/v1/`, and the
registry API itself answers at `registry-1.docker.io`."""

_API_VERSION_SEGMENTS: Final = frozenset({"v1", "v2"})
_KEY_HOST_LABEL = re.compile(r"[a-z0-9*?-]+")
_KEY_IPV6_HOST = re.compile(r"\[[a-f0-9:]+\]")
_KEY_SCHEMES: Final = ("https://", "http://")
_MESSAGE_TEXT_LIMIT: Final = 200


class InvalidPullSecret(ValueError):  # noqa: N818 -- the name other services import (issue 3, item 4)
    """A secret that cannot serve as an image pull secret. The message names it and says why, never a credential.

    Attributes:
        secret: `namespace/name` of the secret (just the name when no namespace was given).
        reason: What is wrong with it.
    """

    def __init__(self, secret: str, reason: str) -> None:
        self.secret = secret
        self.reason = reason
        super().__init__(f"pull secret {secret!r} cannot be used: {reason}")


@dataclass(frozen=True, repr=False)
class Credential:
    """One registry login from a pull secret. `repr` and `str` show where it applies, never its contents.

    Attributes:
        registry: The registry key it was stored under, normalized (`quay.io/org`, `index.docker.io`), without
            scheme or user info.
        source: `namespace/name` of the secret it came from.
        username: Login name (may itself be a token for some registries, so it is not shown either).
        password: Password or access token.
        identity_token: OAuth refresh token (`identitytoken`), for registries that hand one out at login.
        registry_token: Bearer token for the registry (`registrytoken`).
    """

    registry: str
    source: str
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    def __repr__(self) -> str:
        present = [
            name
            for name, value in (
                ("username", self.username),
                ("password", self.password),
                ("identity_token", self.identity_token),
                ("registry_token", self.registry_token),
            )
            if value
        ]
        hidden = "".join(f", {name}=<redacted>" for name in present)
        return f"Credential(registry={self.registry!r}, source={self.source!r}{hidden})"

    def __str__(self) -> str:
        return f"credentials for {self.registry} from secret {self.source}"


@dataclass(frozen=True)
class PullSecret:
    """The usable contents of one image pull secret, in the order its entries were written.

    Attributes:
        source: `namespace/name` of the secret.
        credentials: One credential per registry entry that names a registry and holds a login.
    """

    source: str
    credentials: tuple[Credential, ...]


@dataclass(frozen=True)
class _RegistryKey:
    """A registry key split the way it is matched: lower-case host (labels may be globs), port, path segments."""

    host: str
    port: str
    path: tuple[str, ...]

    @property
    def text(self) -> str:
        """Canonical `host[:port][/path]`; the kubelet orders keys by this string."""
        port = f":{self.port}" if self.port else ""
        path = "".join(f"/{segment}" for segment in self.path)
        return f"{self.host}{port}{path}"

    def matches(self, host: str, port: str, path: tuple[str, ...]) -> bool:
        """Whether this key applies to an image on `host:port` whose repository path is `path`."""
        if self.port != port or self.path != path[: len(self.path)]:
            return False
        if self.host.startswith("[") or host.startswith("["):
            return self.host == host
        key_labels = self.host.split(".")
        labels = host.split(".")
        return len(key_labels) == len(labels) and all(
            fnmatch.fnmatchcase(label, pattern) for label, pattern in zip(labels, key_labels, strict=True)
        )


def parse_pull_secret(
    *, name: str, secret_type: str | None, data: Mapping[str, object] | None, namespace: str = ""
) -> PullSecret:
    """Read the registry credentials out of one secret's `type` and `data`.

    Args:
        name: The secret's name, for messages and `Credential.source`.
        secret_type: The secret's `type`.
        data: The secret's `data`: base64 text as the API returns it, raw JSON text or bytes, or a parsed object.
        namespace: The secret's namespace.

    Raises:
        InvalidPullSecret: Wrong type, missing key, bad base64 or JSON, no `auths`, or a malformed entry.
    """
    source = f"{namespace}/{name}" if namespace else name
    data_key = SECRET_DATA_KEYS.get(secret_type or "")
    if data_key is None:
        raise InvalidPullSecret(source, _wrong_type_reason(secret_type))
    if not data or data_key not in data:
        raise InvalidPullSecret(source, f"it has no {data_key!r} data key, which a {secret_type} secret needs")
    config = _decode_config(source, data_key, data[data_key])
    entries = _registry_entries(source, data_key, config)
    credentials = (_credential(source, str(key), entry) for key, entry in entries.items())
    return PullSecret(source, tuple(credential for credential in credentials if credential is not None))


def pull_secret_from_object(secret: object) -> PullSecret:
    """`parse_pull_secret` for a whole Secret: a JSON-style dict from the API or a `kubernetes` client `V1Secret`.

    `stringData` (a manifest's plain-text form) is honoured over `data`, as the API server does on write.

    Raises:
        InvalidPullSecret: As `parse_pull_secret`, or the object is not a Secret at all.
    """
    if isinstance(secret, Mapping):
        metadata = secret.get("metadata")
        name, namespace = _name_and_namespace(metadata if isinstance(metadata, Mapping) else {})
        secret_type, data, string_data = secret.get("type"), secret.get("data"), secret.get("stringData")
    else:
        metadata = getattr(secret, "metadata", None)
        name, namespace = str(getattr(metadata, "name", "") or ""), str(getattr(metadata, "namespace", "") or "")
        secret_type = getattr(secret, "type", None)
        data, string_data = getattr(secret, "data", None), getattr(secret, "string_data", None)
    source = f"{namespace}/{name}" if namespace else name
    if not isinstance(secret_type, str | None):
        raise InvalidPullSecret(source, "its type is not a string")
    if not isinstance(data, Mapping | None) or not isinstance(string_data, Mapping | None):
        raise InvalidPullSecret(source, "its data is not a map of keys to values")
    merged: dict[str, object] = {str(key): value for key, value in (data or {}).items()}
    merged.update((str(key), value) for key, value in (string_data or {}).items())
    return parse_pull_secret(name=name, namespace=namespace, secret_type=secret_type, data=merged)


def matching_credentials(image: imageref.ImageReference | str, secrets: Iterable[PullSecret]) -> list[Credential]:
    """All credentials of `secrets` that apply to `image`, most specific registry key first (kubelet order).

    An empty list means: pull anonymously.

    Raises:
        InvalidImageReference: `image` is text that is not an image reference.
    """
    reference = image if isinstance(image, imageref.ImageReference) else imageref.parse(image)
    host, port = _split_host_port(reference.registry.lower())
    path = tuple(reference.repository.split("/"))
    keyring = _keyring(secrets)
    found = [credential for key, credentials in keyring if key.matches(host, port, path) for credential in credentials]
    if not found and not port and host in DOCKER_HUB_HOSTS:
        found = [
            credential
            for key, credentials in keyring
            if key.host in DOCKER_HUB_HOSTS and not key.port and key.path == path[: len(key.path)]
            for credential in credentials
        ]
    return list(dict.fromkeys(found))


def _keyring(secrets: Iterable[PullSecret]) -> list[tuple[_RegistryKey, list[Credential]]]:
    """Credentials grouped by parsed key, keys in the kubelet's reverse string order; unparsable keys left out."""
    by_key: dict[str, tuple[_RegistryKey, list[Credential]]] = {}
    for secret in secrets:
        for credential in secret.credentials:
            key = _parse_registry_key(credential.registry, canonical=True)
            if key is not None:
                by_key.setdefault(key.text, (key, []))[1].append(credential)
    return [by_key[text] for text in sorted(by_key, reverse=True)]


def _parse_registry_key(raw: str, *, canonical: bool = False) -> _RegistryKey | None:
    """Parse a registry key from a Docker config; None when it cannot name any registry.

    Args:
        raw: The key as written in the secret, or (`canonical`) a `_RegistryKey.text`, whose path is taken as is.
        canonical: Do not read a leading `v1`/`v2` path segment as the registry API root: it was already removed.
    """
    text = raw.strip()
    for scheme in _KEY_SCHEMES:
        if text[: len(scheme)].lower() == scheme:
            text = text[len(scheme) :]
            break
    if "://" in text:
        return None
    authority, _, path_text = text.partition("/")
    authority = authority.rpartition("@")[2]
    path_text = re.split(r"[?#]", path_text, maxsplit=1)[0]
    host, port = _split_host_port(authority.lower())
    if "@" in path_text or (port and not port.isdigit()) or not _is_key_host(host):
        return None
    path = tuple(segment for segment in path_text.split("/") if segment)
    if not canonical and path[:1] and path[0] in _API_VERSION_SEGMENTS:
        path = path[1:]
    return _RegistryKey(host, port, path)


def _is_key_host(host: str) -> bool:
    if host.startswith("["):
        return _KEY_IPV6_HOST.fullmatch(host) is not None
    return all(_KEY_HOST_LABEL.fullmatch(label) for label in host.split("."))


def _split_host_port(authority: str) -> tuple[str, str]:
    """`host[:port]` → (host, port or ""), with IPv6 hosts kept in their brackets."""
    if authority.startswith("["):
        host, bracket, after = authority.partition("]")
        return (host + bracket, after[1:]) if after.startswith(":") else (authority, "")
    host, _, port = authority.partition(":")
    return host, port


def _display_key(raw: str) -> str:
    """How a registry key is shown: normalized, or (unparsable) only what follows any user info."""
    key = _parse_registry_key(raw)
    return key.text if key is not None else _shorten(raw.rpartition("@")[2].strip())


def _wrong_type_reason(secret_type: str | None) -> str:
    allowed = f"{DOCKER_CONFIG_JSON_TYPE} (key {DOCKER_CONFIG_JSON_KEY}) or {DOCKERCFG_TYPE} (key {DOCKERCFG_KEY})"
    if not secret_type:
        return f"it has no type; image pull secrets must have type {allowed}"
    return f"its type is {_shorten(secret_type)!r}; image pull secrets must have type {allowed}"


def _decode_config(source: str, data_key: str, value: object) -> object:
    """Turn a data value (base64, raw JSON, or parsed) into parsed JSON."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
    elif isinstance(value, str):
        raw = value.encode("utf-8", errors="surrogatepass")
    else:
        raise InvalidPullSecret(source, f"the value of {data_key} is a {type(value).__name__}, not text or bytes")
    raw = raw.strip()
    if not raw:
        raise InvalidPullSecret(source, f"the value of {data_key} is empty")
    if not raw.startswith(b"{"):
        raw = _decode_base64(raw, source, f"the value of {data_key} is neither JSON nor valid base64")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidPullSecret(source, f"the value of {data_key} is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise InvalidPullSecret(
            source, f"the value of {data_key} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    except RecursionError:
        raise InvalidPullSecret(source, f"the value of {data_key} is JSON nested too deeply") from None


def _decode_base64(raw: bytes, source: str, failure: str) -> bytes:
    """Strict standard base64, padded or not, ignoring line breaks (as Go's decoder does)."""
    compact = re.sub(rb"\s+", b"", raw)
    compact += b"=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPullSecret(source, failure) from None


def _registry_entries(source: str, data_key: str, config: object) -> Mapping[str, object]:
    if not isinstance(config, Mapping):
        raise InvalidPullSecret(source, f"{data_key} must hold a JSON object, not {_json_kind(config)}")
    if data_key == DOCKERCFG_KEY:
        if isinstance(config.get("auths"), Mapping):
            raise InvalidPullSecret(
                source,
                f'{DOCKERCFG_KEY} holds an "auths" object, which is the {DOCKER_CONFIG_JSON_KEY} format; '
                f"create the secret with type {DOCKER_CONFIG_JSON_TYPE} and key {DOCKER_CONFIG_JSON_KEY}",
            )
        return config
    auths = config.get("auths")
    if auths is None:
        raise InvalidPullSecret(
            source,
            f'{DOCKER_CONFIG_JSON_KEY} has no "auths" object, so it holds no registry credentials '
            "(credsStore and credHelpers only work on the machine that ran docker login)",
        )
    if not isinstance(auths, Mapping):
        raise InvalidPullSecret(
            source, f'"auths" in {DOCKER_CONFIG_JSON_KEY} must be an object, not {_json_kind(auths)}'
        )
    return auths


def _credential(source: str, raw_key: str, entry: object) -> Credential | None:
    """The credential of one registry entry, or None when it names no registry or holds no login.

    Entries are checked even when their key is unusable, so a broken secret is reported whichever key it has.
    """
    key = _parse_registry_key(raw_key)
    where = f"the entry for registry {_display_key(raw_key)!r}"
    if not isinstance(entry, Mapping):
        raise InvalidPullSecret(source, f"{where} must be an object, not {_json_kind(entry)}")
    fields: dict[str, str] = {}
    for field in ("auth", "username", "password", "identitytoken", "registrytoken"):
        value = entry.get(field)
        if not isinstance(value, str | None):
            raise InvalidPullSecret(source, f'{where} has a "{field}" that is {_json_kind(value)}, not a string')
        fields[field] = value or ""
    username, password = fields["username"], fields["password"]
    if fields["auth"]:
        username, password = _decode_auth(fields["auth"], source, where)
    if key is None or not (username or password or fields["identitytoken"] or fields["registrytoken"]):
        return None
    return Credential(key.text, source, username, password, fields["identitytoken"], fields["registrytoken"])


def _decode_auth(auth: str, source: str, where: str) -> tuple[str, str]:
    failure = f'the "auth" of {where} is not valid base64'
    decoded = _decode_base64(auth.encode("utf-8", errors="surrogatepass"), source, failure)
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPullSecret(source, f'the "auth" of {where} does not decode to UTF-8 text') from None
    username, colon, password = text.partition(":")
    if not colon:
        raise InvalidPullSecret(
            source, f'the "auth" of {where} must be base64 of "username:password", but the decoded text has no ":"'
        )
    return username, password


def _name_and_namespace(metadata: Mapping[object, object]) -> tuple[str, str]:
    return str(metadata.get("name") or ""), str(metadata.get("namespace") or "")


def _json_kind(value: object) -> str:
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        ((int, float), "a number"),
        (str, "a string"),
        (list, "a list"),
        (Mapping, "an object"),
    ]
    if value is None:
        return "null"
    return next((kind for types, kind in kinds if isinstance(value, types)), type(value).__name__)


def _shorten(text: str) -> str:
    return text if len(text) <= _MESSAGE_TEXT_LIMIT else text[:_MESSAGE_TEXT_LIMIT] + "…"
