"""Image references: parse, normalize and format them the way upstream does, but pull digests correctly.

Every match between a job, a NodeImage entry and the images on a node depends on one normalization
(upstream-behaviour.md §1.6 and §10.1), so it lives here and nowhere else.

Grammar (docker/distribution `reference`, as upstream's `ParseNormalizedNamed` applies it)::

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [ registry "/" ] repository          (at most 255 characters once normalized)
    registry    := host [ ":" port ]
    host        := label ( "." label )* | "[" ipv6-hex-and-colons "]"
    label       := [a-zA-Z0-9] | [a-zA-Z0-9] [a-zA-Z0-9-]* [a-zA-Z0-9]
    port        := [0-9]+
    repository  := component ( "/" component )*
    component   := [a-z0-9]+ ( separator [a-z0-9]+ )*
    separator   := "." | "_" | "__" | "-"+
    tag         := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest      := algorithm ":" hex, with sha256 (64), sha384 (96) or sha512 (128) lowercase hex characters

Normalization:

* The first `/`-separated part is the registry only if it contains `.` or `:` or is exactly `localhost`;
  otherwise the whole name is a Docker Hub repository (`foo/bar` → `docker.io/foo/bar`). A repository with
  upper-case letters is rejected. (Newer docker/distribution releases also read an upper-case first part as a
  registry host; we report "must be lowercase" instead, which is what a user who typed `MyOrg/app` needs.)
* `index.docker.io` is the same registry as `docker.io`; a one-part Docker Hub repository gets `library/`.
* No tag and no digest → tag `latest`. Both a tag and a digest → the tag is dropped, the digest kept.
* A bare 64-character hex string is an image ID, not a reference, and is rejected.

The forms of one reference, for the input `ubuntu@sha256:<hex>`:

* `name` (`docker.io/library/ubuntu`) — fully qualified, what registries and credentials see;
* `familiar_name` (`ubuntu`) — what users write; the NodeImage `spec.images` key;
* `pullable()` (`docker.io/library/ubuntu@sha256:<hex>`) — what CRI `PullImage` gets. Upstream joins every
  NodeImage entry with `:` and so can never pull a digest (#2534); we join digests with `@`;
* `nodeimage_entry()` (`ubuntu`, `sha256:<hex>`) — the NodeImage key and the tag entry: the tag, or for a
  digest-pinned image the digest string, exactly as upstream writes it. `from_nodeimage_entry` reverses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, NamedTuple

DOCKER_HUB: Final = "docker.io"
"""The registry of every reference that names none; `docker.io` is how docker/distribution spells it."""

LEGACY_DOCKER_HUB: Final = "index.docker.io"
"""The Docker Hub name older clients use; references that give it are rewritten to `DOCKER_HUB`."""

OFFICIAL_REPOSITORY_PREFIX: Final = "library/"
"""Docker Hub's namespace for official images: `ubuntu` is `docker.io/library/ubuntu`."""

DEFAULT_TAG: Final = "latest"
"""Tag assumed when a reference has neither tag nor digest."""

LOCALHOST: Final = "localhost"
"""The one registry host that needs neither a dot nor a port to be recognised as a host."""

NAME_MAX_LENGTH: Final = 255
"""docker/distribution's limit on the normalized name (registry + "/" + repository)."""

TAG_MAX_LENGTH: Final = 128
"""docker/distribution's limit on a tag."""

DIGEST_HEX_LENGTHS: Final = {"sha256": 64, "sha384": 96, "sha512": 128}
"""The digest algorithms go-digest (and so every runtime) accepts, with the length of their hex encoding."""

_MESSAGE_TEXT_LIMIT: Final = 300
"""Longer input is cut in error messages, so that a pasted blob cannot flood a status or an event."""

_LABEL = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?")
_IPV6_HOST = re.compile(r"\[[a-fA-F0-9:]+\]")
_PORT = re.compile(r"[0-9]+")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG_CHARACTERS = re.compile(r"[A-Za-z0-9_.-]+")
_TAG_FIRST_CHARACTER = re.compile(r"[A-Za-z0-9_]")
_LOWER_HEX = re.compile(r"[a-f0-9]+")
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")


class InvalidImageReference(ValueError):  # noqa: N818 -- the name other services import (issue 3, item 4)
    """An image reference that cannot be parsed; the message says what is wrong, in words meant for users.

    Attributes:
        reason: What is wrong, without the reference (for messages that name the image themselves, such as
            upstream's `invalid image <image>: <reason>`).
        reference: The text that was parsed, when there was one.
    """

    def __init__(self, reason: str, reference: str | None = None) -> None:
        self.reason = reason
        self.reference = reference
        if reference is None:
            message = f"invalid image reference: {reason}"
        else:
            message = f"invalid image reference {_quote(reference)}: {reason}"
        super().__init__(message)

    def for_reference(self, reference: str) -> InvalidImageReference:
        """The same error, naming the text it came from."""
        return InvalidImageReference(self.reason, reference)


class NodeImageEntry(NamedTuple):
    """Where an image lives in a NodeImage: the `spec.images` key and the tag entry's `tag`.

    For a digest-pinned image `tag` is the digest (`sha256:…`), as upstream writes it.
    """

    image: str
    tag: str


@dataclass(frozen=True)
class ImageReference:
    """One normalized image reference. Exactly one of `tag` and `digest` is set.

    Construct it with `parse()` from user text, or directly from parts; either way the parts are normalized
    (Docker Hub aliases, `library/`, default tag, tag dropped for a digest) and validated, so two references
    to the same image compare equal.

    Attributes:
        registry: Registry host with optional port, as written (`docker.io`, `localhost:5000`, `[::1]:5000`).
        repository: Path inside the registry (`library/ubuntu`).
        tag: The tag, or None for a digest-pinned reference.
        digest: `<algorithm>:<hex>`, or None.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        registry = DOCKER_HUB if self.registry == LEGACY_DOCKER_HUB else self.registry
        _check_registry(registry)
        repository = self.repository
        if registry == DOCKER_HUB and repository and "/" not in repository:
            repository = OFFICIAL_REPOSITORY_PREFIX + repository
        _check_repository(repository)
        _check_name_length(f"{registry}/{repository}")
        tag = self.tag
        if tag is not None:
            _check_tag(tag)
        if self.digest is not None:
            _check_digest(self.digest)
            tag = None
        elif tag is None:
            tag = DEFAULT_TAG
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "repository", repository)
        object.__setattr__(self, "tag", tag)

    @property
    def name(self) -> str:
        """Fully qualified name without tag or digest: `docker.io/library/ubuntu`."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """The short name users write and NodeImage keys use: `ubuntu`, `foo/bar`, `quay.io/foo/bar`."""
        if self.registry != DOCKER_HUB:
            return self.name
        official = self.repository.removeprefix(OFFICIAL_REPOSITORY_PREFIX)
        if official != self.repository and "/" not in official:
            return official
        if _split_registry(self.repository)[0]:
            # `docker.io/foo.bar/baz` shortened to `foo.bar/baz` would name registry foo.bar. Docker Hub
            # forbids such namespaces, so only hand-written names get here; upstream would shorten (and mis-pull).
            return self.name
        return self.repository

    def pullable(self) -> str:
        """The reference to hand to CRI `PullImage`: `name:tag`, or `name@digest` for a pinned image."""
        return self.name + self._suffix()

    def familiar(self) -> str:
        """The short form with tag or digest: `ubuntu:latest`, `ubuntu@sha256:…`."""
        return self.familiar_name + self._suffix()

    def nodeimage_entry(self) -> NodeImageEntry:
        """The NodeImage `spec.images` key and tag entry for this image (upstream's name/tag pair)."""
        return NodeImageEntry(self.familiar_name, self.digest if self.digest is not None else str(self.tag))

    def __str__(self) -> str:
        return self.pullable()

    def _suffix(self) -> str:
        return f"@{self.digest}" if self.digest is not None else f":{self.tag}"


def parse(text: str) -> ImageReference:
    """Parse and normalize an image reference as a user wrote it (`ubuntu`, `quay.io/a/b:v1`, `x@sha256:…`).

    Raises:
        InvalidImageReference: The text is not an image reference; the message says which part is wrong.
    """
    if not isinstance(text, str):
        raise InvalidImageReference(f"an image reference must be a string, not {type(text).__name__}")
    try:
        return _parse_text(text)
    except InvalidImageReference as err:
        raise err.for_reference(text) from None


def from_nodeimage_entry(image: str, tag: str) -> ImageReference:
    """Rebuild the reference a NodeImage entry stands for: a `tag` containing `:` is a digest (tags cannot).

    Raises:
        InvalidImageReference: The key is not an image name without tag, or the tag is neither tag nor digest.
    """
    if not isinstance(image, str) or not isinstance(tag, str):
        raise InvalidImageReference("a NodeImage image key and tag must be strings")
    joined = f"{image}@{tag}" if ":" in tag else f"{image}:{tag}"
    try:
        if "@" in image or ":" in image.rpartition("/")[2]:
            raise InvalidImageReference(f"the NodeImage image key {_quote(image)} must be a name without tag or digest")
        return _parse_text(joined)
    except InvalidImageReference as err:
        raise err.for_reference(joined) from None


def _parse_text(text: str) -> ImageReference:
    if not text:
        raise InvalidImageReference("it is empty")
    if text != text.strip():
        raise InvalidImageReference("it has leading or trailing whitespace")
    if _IMAGE_ID.fullmatch(text):
        raise InvalidImageReference(
            "a 64-character hex string is an image ID, not a reference; pin a digest as name@sha256:<hex>"
        )
    name_and_tag, at, digest = text.partition("@")
    if at and not digest:
        raise InvalidImageReference("the digest after '@' is empty")
    if "@" in digest:
        raise InvalidImageReference("it contains more than one '@'")
    registry, remainder = _split_registry(name_and_tag)
    repository, colon, tag = remainder.partition(":")
    if colon and not tag:
        raise InvalidImageReference("the tag after ':' is empty")
    if not repository:
        raise InvalidImageReference(
            f"the repository after registry {_quote(registry)} is empty" if registry else "the image name is empty"
        )
    _check_lowercase(repository)
    return ImageReference(registry or DOCKER_HUB, repository, tag if colon else None, digest if at else None)


def _split_registry(name: str) -> tuple[str, str]:
    """Split off the registry the way docker/distribution does; an empty registry means Docker Hub."""
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == LOCALHOST):
        return first, rest
    return "", name


def _check_registry(registry: str) -> None:
    if not registry:
        raise InvalidImageReference("the registry host is empty")
    host, port = _split_port(registry)
    if port is not None and not _PORT.fullmatch(port):
        raise InvalidImageReference(f"the registry port {_quote(port)} must be a number")
    if host.startswith("["):
        if not _IPV6_HOST.fullmatch(host):
            raise InvalidImageReference(f"the registry host {_quote(host)} is not a valid bracketed IPv6 address")
        return
    for label in host.split("."):
        if not _LABEL.fullmatch(label):
            raise InvalidImageReference(
                f"the registry host {_quote(host)} is invalid: each dot-separated part must be letters, digits "
                "and inner hyphens"
            )


def _split_port(registry: str) -> tuple[str, str | None]:
    if registry.startswith("["):
        host, bracket, after = registry.partition("]")
        if bracket and after.startswith(":"):
            return host + bracket, after[1:]
        return registry, None
    host, colon, port = registry.partition(":")
    return host, port if colon else None


def _check_repository(repository: str) -> None:
    if not repository:
        raise InvalidImageReference("the repository is empty")
    _check_lowercase(repository)
    for component in repository.split("/"):
        if not component:
            raise InvalidImageReference(f"the repository {_quote(repository)} has an empty path component")
        if not _PATH_COMPONENT.fullmatch(component):
            raise InvalidImageReference(
                f"the repository path component {_quote(component)} is invalid: use lowercase letters and digits, "
                "separated by '.', '_', '__' or dashes, starting and ending with a letter or digit"
            )


def _check_lowercase(repository: str) -> None:
    """Checked before the grammar, as upstream does, so that `Ubuntu` gets the message its author needs."""
    if any("A" <= character <= "Z" for character in repository):
        raise InvalidImageReference(f"the repository {_quote(repository)} must be lowercase")


def _check_name_length(name: str) -> None:
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidImageReference(
            f"the name is {len(name)} characters long once normalized (registry/repository); "
            f"at most {NAME_MAX_LENGTH} are allowed"
        )


def _check_tag(tag: str) -> None:
    if not tag:
        raise InvalidImageReference("the tag is empty")
    if len(tag) > TAG_MAX_LENGTH:
        raise InvalidImageReference(f"the tag is {len(tag)} characters long; at most {TAG_MAX_LENGTH} are allowed")
    if not _TAG_CHARACTERS.fullmatch(tag):
        raise InvalidImageReference(
            f"the tag {_quote(tag)} may contain only letters, digits, '_', '.' and '-' (no '/' or spaces)"
        )
    if not _TAG_FIRST_CHARACTER.match(tag):
        raise InvalidImageReference(f"the tag {_quote(tag)} must start with a letter, digit or '_'")


def _check_digest(digest: str) -> None:
    algorithm, colon, encoded = digest.partition(":")
    if not colon or not algorithm:
        raise InvalidImageReference(f"the digest {_quote(digest)} must look like sha256:<64 lowercase hex characters>")
    expected_length = DIGEST_HEX_LENGTHS.get(algorithm)
    if expected_length is None:
        raise InvalidImageReference(
            f"the digest algorithm {_quote(algorithm)} is not supported; use sha256, sha384 or sha512"
        )
    if len(encoded) != expected_length or not _LOWER_HEX.fullmatch(encoded):
        raise InvalidImageReference(
            f"a {algorithm} digest needs exactly {expected_length} lowercase hex characters after '{algorithm}:', "
            f"got {_quote(encoded)} ({len(encoded)} characters)"
        )


def _quote(text: str) -> str:
    """Quote user text for a message: escaped (no line breaks can be injected) and cut to a readable length."""
    if len(text) > _MESSAGE_TEXT_LIMIT:
        text = text[:_MESSAGE_TEXT_LIMIT] + "…"
    return repr(text)
