"""Image reference parsing and normalization (upstream-behaviour.md §1.6, design.md §5: digests pull with `@`)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.api.imageref import (
    ImageReference,
    InvalidImageReference,
    NodeImageEntry,
    from_nodeimage_entry,
    parse,
)

SHA256 = "sha256:" + "0123456789abcdef" * 4
SHA512 = "sha512:" + "0123456789abcdef" * 8


# --- Valid references: every form of each ------------------------------------------------------------

VALID = [
    # The examples upstream's tests use (§1.6): (familiar name, tag) pairs.
    pytest.param("ubuntu", "docker.io", "library/ubuntu", "latest", None, "ubuntu", id="upstream-bare-name"),
    pytest.param("ubuntu:20.04", "docker.io", "library/ubuntu", "20.04", None, "ubuntu", id="upstream-tag"),
    pytest.param(
        "docker.io/library/ubuntu:latest", "docker.io", "library/ubuntu", "latest", None, "ubuntu", id="upstream-full"
    ),
    pytest.param(
        "myregistry:5000/my/image:v1",
        "myregistry:5000",
        "my/image",
        "v1",
        None,
        "myregistry:5000/my/image",
        id="upstream-registry-with-port",
    ),
    pytest.param(
        f"ubuntu:20.04@{SHA256}", "docker.io", "library/ubuntu", None, SHA256, "ubuntu", id="upstream-tag-and-digest"
    ),
    # Docker Hub forms.
    pytest.param("foo/bar", "docker.io", "foo/bar", "latest", None, "foo/bar", id="hub-user-repo"),
    pytest.param("docker.io/foo/bar:1", "docker.io", "foo/bar", "1", None, "foo/bar", id="hub-explicit"),
    pytest.param("library/nginx", "docker.io", "library/nginx", "latest", None, "nginx", id="hub-library"),
    pytest.param("docker.io/nginx", "docker.io", "library/nginx", "latest", None, "nginx", id="hub-explicit-official"),
    pytest.param("index.docker.io/nginx", "docker.io", "library/nginx", "latest", None, "nginx", id="hub-legacy-name"),
    pytest.param(
        "docker.io/library/foo/bar", "docker.io", "library/foo/bar", "latest", None, "library/foo/bar", id="hub-deep"
    ),
    pytest.param(
        "registry-1.docker.io/library/nginx",
        "registry-1.docker.io",
        "library/nginx",
        "latest",
        None,
        "registry-1.docker.io/library/nginx",
        id="hub-api-host-is-not-rewritten",
    ),
    pytest.param(f"nginx@{SHA256}", "docker.io", "library/nginx", None, SHA256, "nginx", id="digest-only"),
    pytest.param(f"nginx@{SHA512}", "docker.io", "library/nginx", None, SHA512, "nginx", id="digest-sha512"),
    # Registry detection: a dot, a colon, or localhost.
    pytest.param(
        "quay.io/coreos/etcd:v3.5.0", "quay.io", "coreos/etcd", "v3.5.0", None, "quay.io/coreos/etcd", id="dot"
    ),
    pytest.param("localhost/foo", "localhost", "foo", "latest", None, "localhost/foo", id="localhost"),
    pytest.param(
        "localhost:5000/a/b:c", "localhost:5000", "a/b", "c", None, "localhost:5000/a/b", id="localhost-with-port"
    ),
    pytest.param("localhost", "docker.io", "library/localhost", "latest", None, "localhost", id="localhost-alone"),
    pytest.param(
        "localhost:5000", "docker.io", "library/localhost", "5000", None, "localhost", id="localhost-port-is-a-tag"
    ),
    pytest.param(
        "foo.com:5000", "docker.io", "library/foo.com", "5000", None, "foo.com", id="host-without-path-is-a-repo"
    ),
    pytest.param("127.0.0.1:5000/x", "127.0.0.1:5000", "x", "latest", None, "127.0.0.1:5000/x", id="ipv4"),
    pytest.param("[::1]:5000/x:y", "[::1]:5000", "x", "y", None, "[::1]:5000/x", id="ipv6-with-port"),
    pytest.param("[fe80::1]/x", "[fe80::1]", "x", "latest", None, "[fe80::1]/x", id="ipv6"),
    pytest.param("My-Registry.com/x", "My-Registry.com", "x", "latest", None, "My-Registry.com/x", id="host-case-kept"),
    pytest.param("host:1/x", "host:1", "x", "latest", None, "host:1/x", id="colon-makes-a-host"),
    # Repository and tag grammar edges.
    pytest.param(
        "a__b/c-d/e---f/g.h/i_j", "docker.io", "a__b/c-d/e---f/g.h/i_j", "latest", None, None, id="separators"
    ),
    pytest.param("x:_tag", "docker.io", "library/x", "_tag", None, "x", id="tag-starts-with-underscore"),
    pytest.param("x:A-b.C_9", "docker.io", "library/x", "A-b.C_9", None, "x", id="tag-mixed-case"),
    pytest.param("x:" + "t" * 128, "docker.io", "library/x", "t" * 128, None, "x", id="tag-128-characters"),
    pytest.param("a" * 237, "docker.io", "library/" + "a" * 237, "latest", None, "a" * 237, id="name-255-characters"),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest", "familiar_name"), VALID)
def test_parse_normalizes(text, registry, repository, tag, digest, familiar_name):
    reference = parse(text)

    assert (reference.registry, reference.repository, reference.tag, reference.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert reference.name == f"{registry}/{repository}"
    assert reference.familiar_name == (familiar_name or repository)


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        pytest.param("ubuntu", ("ubuntu", "latest"), id="bare"),
        pytest.param("ubuntu:20.04", ("ubuntu", "20.04"), id="tag"),
        pytest.param("docker.io/library/ubuntu:latest", ("ubuntu", "latest"), id="full"),
        pytest.param("myregistry:5000/my/image:v1", ("myregistry:5000/my/image", "v1"), id="registry"),
        pytest.param(f"ubuntu:20.04@{SHA256}", ("ubuntu", SHA256), id="digest-replaces-tag"),
        pytest.param(f"quay.io/a/b@{SHA256}", ("quay.io/a/b", SHA256), id="digest-other-registry"),
    ],
)
def test_nodeimage_entry_is_upstreams_name_tag_pair(text, entry):
    assert parse(text).nodeimage_entry() == NodeImageEntry(*entry)


@pytest.mark.parametrize(
    ("text", "pullable", "familiar"),
    [
        pytest.param("ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest", id="tag"),
        pytest.param(
            f"ubuntu:20.04@{SHA256}", f"docker.io/library/ubuntu@{SHA256}", f"ubuntu@{SHA256}", id="digest-joined-by-at"
        ),
        pytest.param("quay.io/a/b:v1", "quay.io/a/b:v1", "quay.io/a/b:v1", id="other-registry"),
        pytest.param("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest", id="ipv6"),
    ],
)
def test_pullable_and_familiar_forms(text, pullable, familiar):
    reference = parse(text)

    assert reference.pullable() == pullable
    assert str(reference) == pullable
    assert reference.familiar() == familiar


def test_digest_pinned_image_is_pullable_unlike_upstream():
    """Upstream rebuilds `name:sha256:…`, which no runtime accepts (#2534); the NodeImage round trip must give `@`."""
    entry = parse(f"nginx:1.25@{SHA256}").nodeimage_entry()

    assert from_nodeimage_entry(*entry).pullable() == f"docker.io/library/nginx@{SHA256}"


@pytest.mark.parametrize(
    ("image", "tag", "pullable"),
    [
        pytest.param("ubuntu", "latest", "docker.io/library/ubuntu:latest", id="familiar-tag"),
        pytest.param("ubuntu", SHA256, f"docker.io/library/ubuntu@{SHA256}", id="familiar-digest"),
        pytest.param("myregistry:5000/my/image", "v1", "myregistry:5000/my/image:v1", id="registry-port"),
        pytest.param("docker.io/library/ubuntu", "1", "docker.io/library/ubuntu:1", id="hand-written-full-key"),
    ],
)
def test_from_nodeimage_entry(image, tag, pullable):
    assert from_nodeimage_entry(image, tag).pullable() == pullable


@pytest.mark.parametrize(
    ("image", "tag", "message"),
    [
        pytest.param(
            "ubuntu:1",
            "latest",
            "invalid image reference 'ubuntu:1:latest': the NodeImage image key 'ubuntu:1' must be a name without "
            "tag or digest",
            id="key-with-tag",
        ),
        pytest.param(
            f"ubuntu@{SHA256}",
            "latest",
            f"invalid image reference 'ubuntu@{SHA256}:latest': the NodeImage image key 'ubuntu@{SHA256}' must be "
            "a name without tag or digest",
            id="key-with-digest",
        ),
        pytest.param(
            "ubuntu",
            "sha256:abc",
            "invalid image reference 'ubuntu@sha256:abc': a sha256 digest needs exactly 64 lowercase hex characters "
            "after 'sha256:', got 'abc' (3 characters)",
            id="short-digest",
        ),
        pytest.param("ubuntu", "", "invalid image reference 'ubuntu:': the tag after ':' is empty", id="empty-tag"),
        pytest.param("", "latest", "invalid image reference ':latest': the image name is empty", id="empty-key"),
    ],
)
def test_from_nodeimage_entry_rejects(image, tag, message):
    with pytest.raises(InvalidImageReference) as caught:
        from_nodeimage_entry(image, tag)

    assert str(caught.value) == message


# --- Invalid references: each message says what is wrong --------------------------------------------

INVALID = [
    pytest.param("", "it is empty", id="empty"),
    pytest.param(" ubuntu", "it has leading or trailing whitespace", id="leading-space"),
    pytest.param("ubuntu\n", "it has leading or trailing whitespace", id="trailing-newline"),
    pytest.param("Ubuntu", "the repository 'Ubuntu' must be lowercase", id="uppercase"),
    pytest.param("MyOrg/app", "the repository 'MyOrg/app' must be lowercase", id="uppercase-first-part"),
    pytest.param("quay.io/Foo/bar:v1", "the repository 'Foo/bar' must be lowercase", id="uppercase-other-registry"),
    pytest.param(
        "0123456789abcdef" * 4,
        "a 64-character hex string is an image ID, not a reference; pin a digest as name@sha256:<hex>",
        id="image-id",
    ),
    pytest.param("ubuntu@", "the digest after '@' is empty", id="empty-digest"),
    pytest.param("ubuntu:", "the tag after ':' is empty", id="empty-tag"),
    pytest.param(f"a@{SHA256}@x", "it contains more than one '@'", id="two-ats"),
    pytest.param(
        "ubuntu@sha256:abc",
        "a sha256 digest needs exactly 64 lowercase hex characters after 'sha256:', got 'abc' (3 characters)",
        id="short-digest",
    ),
    pytest.param(
        "ubuntu@sha256:" + "A" * 64,
        f"a sha256 digest needs exactly 64 lowercase hex characters after 'sha256:', got '{'A' * 64}' (64 characters)",
        id="uppercase-digest",
    ),
    pytest.param(
        "ubuntu@md5:" + "a" * 32,
        "the digest algorithm 'md5' is not supported; use sha256, sha384 or sha512",
        id="unsupported-algorithm",
    ),
    pytest.param(
        "ubuntu@sha256", "the digest 'sha256' must look like sha256:<64 lowercase hex characters>", id="digest-no-colon"
    ),
    pytest.param("ubuntu:-x", "the tag '-x' must start with a letter, digit or '_'", id="tag-leading-dash"),
    pytest.param("ubuntu:.x", "the tag '.x' must start with a letter, digit or '_'", id="tag-leading-dot"),
    pytest.param(
        "ubuntu:v1!",
        "the tag 'v1!' may contain only letters, digits, '_', '.' and '-' (no '/' or spaces)",
        id="tag-bang",
    ),
    pytest.param(
        "ubuntu:a:b",
        "the tag 'a:b' may contain only letters, digits, '_', '.' and '-' (no '/' or spaces)",
        id="two-tags",
    ),
    pytest.param("ubuntu:" + "t" * 129, "the tag is 129 characters long; at most 128 are allowed", id="tag-too-long"),
    pytest.param("ubuntu:a/b", "the registry port 'a' must be a number", id="tag-with-slash-reads-as-port"),
    pytest.param("quay.io:abc/x", "the registry port 'abc' must be a number", id="port-not-number"),
    pytest.param(
        "bad_host.com/x",
        "the registry host 'bad_host.com' is invalid: each dot-separated part must be letters, digits and inner "
        "hyphens",
        id="host-underscore",
    ),
    pytest.param(
        "-a.com/x",
        "the registry host '-a.com' is invalid: each dot-separated part must be letters, digits and inner hyphens",
        id="host-leading-dash",
    ),
    pytest.param(
        "a..b/x",
        "the registry host 'a..b' is invalid: each dot-separated part must be letters, digits and inner hyphens",
        id="host-empty-label",
    ),
    pytest.param("[::g]:5000/x", "the registry host '[::g]' is not a valid bracketed IPv6 address", id="ipv6-bad-hex"),
    pytest.param("[::1]x/y", "the registry host '[::1]x' is not a valid bracketed IPv6 address", id="ipv6-junk"),
    pytest.param("docker.io/", "the repository after registry 'docker.io' is empty", id="registry-only"),
    pytest.param(":latest", "the image name is empty", id="tag-only"),
    pytest.param(f"@{SHA256}", "the image name is empty", id="digest-only"),
    pytest.param("a//b", "the repository 'a//b' has an empty path component", id="double-slash"),
    pytest.param("a/b/", "the repository 'a/b/' has an empty path component", id="trailing-slash"),
    pytest.param("/ubuntu", "the repository '/ubuntu' has an empty path component", id="leading-slash"),
    pytest.param(
        "ubu ntu",
        "the repository path component 'ubu ntu' is invalid: use lowercase letters and digits, separated by '.', '_', "
        "'__' or dashes, starting and ending with a letter or digit",
        id="inner-space",
    ),
    pytest.param(
        "ubuntu-",
        "the repository path component 'ubuntu-' is invalid: use lowercase letters and digits, separated by '.', '_', "
        "'__' or dashes, starting and ending with a letter or digit",
        id="trailing-dash",
    ),
    pytest.param(
        "a___b",
        "the repository path component 'a___b' is invalid: use lowercase letters and digits, separated by '.', '_', "
        "'__' or dashes, starting and ending with a letter or digit",
        id="triple-underscore",
    ),
    pytest.param(
        "ubü",
        "the repository path component 'ubü' is invalid: use lowercase letters and digits, separated by '.', '_', "
        "'__' or dashes, starting and ending with a letter or digit",
        id="non-ascii",
    ),
    pytest.param(
        "a" * 238,
        "the name is 256 characters long once normalized (registry/repository); at most 255 are allowed",
        id="name-256-characters",
    ),
]


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_parse_rejects_with_a_precise_message(text, reason):
    with pytest.raises(InvalidImageReference) as caught:
        parse(text)

    error = caught.value
    assert isinstance(error, ValueError)
    assert error.reason == reason
    assert error.reference == text
    assert str(error) == f"invalid image reference {text!r}: {reason}"


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        pytest.param(None, "NoneType", id="none"),
        pytest.param(b"ubuntu", "bytes", id="bytes"),
        pytest.param(3, "int", id="int"),
    ],
)
def test_parse_rejects_non_text(value, type_name):
    with pytest.raises(InvalidImageReference) as caught:
        parse(value)

    assert str(caught.value) == f"invalid image reference: an image reference must be a string, not {type_name}"


def test_long_input_is_cut_in_the_message():
    text = "A" * 5000

    with pytest.raises(InvalidImageReference) as caught:
        parse(text)

    assert len(str(caught.value)) < 800
    assert "…" in str(caught.value)


# --- Direct construction normalizes the same way ------------------------------------------------------


@pytest.mark.parametrize(
    ("built", "text"),
    [
        pytest.param(ImageReference("docker.io", "nginx"), "nginx", id="library-and-latest-added"),
        pytest.param(ImageReference("index.docker.io", "nginx", "1"), "nginx:1", id="legacy-hub-name"),
        pytest.param(ImageReference("quay.io", "a/b", "v1", SHA256), f"quay.io/a/b@{SHA256}", id="digest-drops-tag"),
    ],
)
def test_constructor_normalizes_like_parse(built, text):
    assert built == parse(text)
    assert hash(built) == hash(parse(text))


@pytest.mark.parametrize(
    ("registry", "repository", "tag", "digest", "reason"),
    [
        pytest.param("docker.io", "", None, None, "the repository is empty", id="empty-repository"),
        pytest.param("", "x", None, None, "the registry host is empty", id="empty-registry"),
        pytest.param("docker.io", "X", None, None, "the repository 'library/X' must be lowercase", id="uppercase"),
        pytest.param("docker.io", "x", "", None, "the tag is empty", id="empty-tag"),
        pytest.param(
            "docker.io",
            "x",
            None,
            "sha1:" + "a" * 40,
            "the digest algorithm 'sha1' is not supported; use sha256, sha384 or sha512",
            id="sha1",
        ),
    ],
)
def test_constructor_validates(registry, repository, tag, digest, reason):
    with pytest.raises(InvalidImageReference) as caught:
        ImageReference(registry, repository, tag, digest)

    assert str(caught.value) == f"invalid image reference: {reason}"
    assert caught.value.reference is None


def test_reference_is_immutable():
    reference = parse("nginx")

    with pytest.raises(AttributeError):
        reference.tag = "other"  # type: ignore[misc]


# --- Properties -----------------------------------------------------------------------------------------

_alphanumeric = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
_separator = st.sampled_from([".", "_", "__", "-", "--"])
_component = st.builds(
    lambda first, rest: first + "".join(separator + part for separator, part in rest),
    _alphanumeric,
    st.lists(st.tuples(_separator, _alphanumeric), max_size=2),
)
_label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
_port = st.integers(min_value=0, max_value=99999).map(str)
_host = st.one_of(
    st.lists(_label, min_size=2, max_size=4).map(".".join),
    st.just("localhost"),
    st.from_regex(r"\[[a-fA-F0-9]{0,4}:[a-fA-F0-9:]{0,10}\]", fullmatch=True),
    st.sampled_from(["docker.io", "index.docker.io", "registry-1.docker.io"]),
)
_registry = st.one_of(
    st.just(""),
    st.builds(lambda host, port: f"{host}:{port}/" if port else f"{host}/", _host, st.none() | _port),
    st.builds(lambda label, port: f"{label}:{port}/", _label, _port),
)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_digest = st.one_of(
    st.from_regex(r"sha256:[a-f0-9]{64}", fullmatch=True), st.from_regex(r"sha512:[a-f0-9]{128}", fullmatch=True)
)


def _join_reference(registry: str, components: list[str], tag: str | None, digest: str | None) -> str:
    if not registry and len(components) > 1 and ("." in components[0] or components[0] == "localhost"):
        registry = "docker.io/"  # otherwise the grammar reads the first component as a registry host
    return registry + "/".join(components) + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


_reference_text = st.builds(
    _join_reference,
    _registry,
    st.lists(_component, min_size=1, max_size=4),
    st.none() | _tag,
    st.none() | _digest,
)


def _assert_forms_are_stable(reference: ImageReference) -> None:
    assert parse(str(reference)) == reference
    assert parse(reference.familiar()) == reference
    assert parse(reference.pullable()).pullable() == reference.pullable()
    assert from_nodeimage_entry(*reference.nodeimage_entry()) == reference
    assert (reference.tag is None) != (reference.digest is None)


@settings(max_examples=400, deadline=None)
@given(_reference_text)
def test_grammar_generated_references_parse_and_round_trip(text):
    try:
        reference = parse(text)
    except InvalidImageReference as err:
        # The only way a grammar-built reference can fail is the 255-character name limit.
        assert "characters long once normalized" in err.reason
        return
    _assert_forms_are_stable(reference)
    assert parse(str(parse(text))) == parse(text)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="abcAZ09._-/:@[]!sha256 \t")))
def test_arbitrary_text_raises_only_invalid_image_reference(text):
    try:
        reference = parse(text)
    except InvalidImageReference as err:
        assert err.reason
        return
    _assert_forms_are_stable(reference)


@settings(deadline=None)
@given(st.text(), st.text())
def test_arbitrary_nodeimage_entries_raise_only_invalid_image_reference(image, tag):
    try:
        reference = from_nodeimage_entry(image, tag)
    except InvalidImageReference:
        return
    _assert_forms_are_stable(reference)
