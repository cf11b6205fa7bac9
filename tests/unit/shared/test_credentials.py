"""Pull secret parsing and kubelet-style registry matching (design.md §3); no credential may leak anywhere."""

from __future__ import annotations

import base64
import json
import traceback

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.client import V1ObjectMeta, V1Secret

from services.shared.api.imageref import InvalidImageReference, parse
from services.shared.credentials import (
    DOCKER_CONFIG_JSON_KEY,
    DOCKER_CONFIG_JSON_TYPE,
    DOCKERCFG_KEY,
    DOCKERCFG_TYPE,
    Credential,
    InvalidPullSecret,
    PullSecret,
    matching_credentials,
    parse_pull_secret,
    pull_secret_from_object,
)

PASSWORD = "s3cr3t-PASSWORD-value"
USERNAME = "robot-user-name"
TOKEN = "tok-IDENTITY-value"
SECRET_WORDS = (PASSWORD, USERNAME, TOKEN)


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def auth(username: str = USERNAME, password: str = PASSWORD) -> str:
    return b64(f"{username}:{password}")


def dockerconfigjson(auths: object, *, name: str = "pull", namespace: str = "ns") -> PullSecret:
    data = {DOCKER_CONFIG_JSON_KEY: b64(json.dumps({"auths": auths}))}
    return parse_pull_secret(name=name, namespace=namespace, secret_type=DOCKER_CONFIG_JSON_TYPE, data=data)


def assert_no_secret_in(*texts: str) -> None:
    for text in texts:
        for word in SECRET_WORDS:
            assert word not in text


# --- Parsing ---------------------------------------------------------------------------------------------


def test_dockerconfigjson_as_the_api_returns_it():
    secret = dockerconfigjson({"quay.io": {"auth": auth()}})

    assert secret == PullSecret("ns/pull", (Credential("quay.io", "ns/pull", USERNAME, PASSWORD),))


CONFIG_JSON = json.dumps({"auths": {"quay.io": {"username": USERNAME, "password": PASSWORD}}})


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b64(CONFIG_JSON), id="base64-text"),
        pytest.param(b64(CONFIG_JSON).encode(), id="base64-bytes"),
        pytest.param(CONFIG_JSON, id="json-text"),
        pytest.param(CONFIG_JSON.encode(), id="json-bytes"),
        pytest.param(f"  {CONFIG_JSON}\n", id="json-text-with-whitespace"),
        pytest.param(json.loads(CONFIG_JSON), id="parsed"),
        pytest.param(b64(CONFIG_JSON).rstrip("="), id="base64-unpadded"),
    ],
)
def test_data_value_forms(value):
    secret = parse_pull_secret(name="pull", secret_type=DOCKER_CONFIG_JSON_TYPE, data={DOCKER_CONFIG_JSON_KEY: value})

    assert secret.credentials == (Credential("quay.io", "pull", USERNAME, PASSWORD),)


def test_legacy_dockercfg_is_the_map_itself():
    data = {DOCKERCFG_KEY: b64(json.dumps({"https://index.docker.io/v1/": {"auth": auth(), "email": "a@b.c"}}))}

    secret = parse_pull_secret(name="old", namespace="ns", secret_type=DOCKERCFG_TYPE, data=data)

    assert secret.credentials == (Credential("index.docker.io", "ns/old", USERNAME, PASSWORD),)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param({"auth": auth()}, (USERNAME, PASSWORD, "", ""), id="auth"),
        pytest.param({"auth": auth().rstrip("=")}, (USERNAME, PASSWORD, "", ""), id="auth-unpadded"),
        pytest.param({"auth": b64("u:pa:ss")}, ("u", "pa:ss", "", ""), id="password-with-colon"),
        pytest.param({"auth": b64(":only-password")}, ("", "only-password", "", ""), id="empty-username"),
        pytest.param(
            {"auth": auth(), "username": "other", "password": "other"}, (USERNAME, PASSWORD, "", ""), id="auth-wins"
        ),
        pytest.param(
            {"username": USERNAME, "password": PASSWORD}, (USERNAME, PASSWORD, "", ""), id="username-password"
        ),
        pytest.param({"username": USERNAME}, (USERNAME, "", "", ""), id="username-only"),
        pytest.param({"identitytoken": TOKEN}, ("", "", TOKEN, ""), id="identity-token"),
        pytest.param({"registrytoken": TOKEN}, ("", "", "", TOKEN), id="registry-token"),
        pytest.param(
            {"username": "<token>", "identitytoken": TOKEN, "auth": None}, ("<token>", "", TOKEN, ""), id="null-auth"
        ),
    ],
)
def test_entry_fields(entry, expected):
    (credential,) = dockerconfigjson({"r.io": entry}).credentials

    assert (credential.username, credential.password, credential.identity_token, credential.registry_token) == expected


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({}, id="empty-as-docker-login-with-creds-store-writes"),
        pytest.param({"email": "a@b.c"}, id="email-only"),
        pytest.param({"auth": "", "username": None}, id="empty-values"),
    ],
)
def test_entries_without_credentials_are_skipped(entry):
    secret = dockerconfigjson({"empty.io": entry, "quay.io": {"auth": auth()}})

    assert [credential.registry for credential in secret.credentials] == ["quay.io"]


@pytest.mark.parametrize(
    ("key", "registry"),
    [
        pytest.param("https://index.docker.io/v1/", "index.docker.io", id="docker-login-key"),
        pytest.param("index.docker.io/v1/", "index.docker.io", id="no-scheme-v1"),
        pytest.param("http://quay.io/v2/org/", "quay.io/org", id="http-v2-path"),
        pytest.param("HTTPS://Quay.IO/org", "quay.io/org", id="case"),
        pytest.param("https://user:pw@host.io/", "host.io", id="user-info-dropped"),
        pytest.param("quay.io/org/team/", "quay.io/org/team", id="trailing-slash"),
        pytest.param("quay.io:443", "quay.io:443", id="port"),
        pytest.param("[::1]:5000", "[::1]:5000", id="ipv6"),
        pytest.param("*.example.com", "*.example.com", id="glob"),
        pytest.param("quay.io/org?x=1#frag", "quay.io/org", id="query-and-fragment"),
        pytest.param("  quay.io  ", "quay.io", id="whitespace"),
    ],
)
def test_registry_keys_are_normalized(key, registry):
    (credential,) = dockerconfigjson({key: {"auth": auth()}}).credentials

    assert credential.registry == registry


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("not a host!", id="spaces"),
        pytest.param("ftp://quay.io", id="other-scheme"),
        pytest.param("ftp://u:pw@x/y@quay.io", id="ends-like-a-host"),
        pytest.param("quay.io:https", id="port-not-a-number"),
        pytest.param("my_registry.local", id="underscore"),
        pytest.param("quay.io/a@b", id="at-in-path"),
        pytest.param("", id="empty"),
    ],
)
def test_keys_that_name_no_registry_are_skipped(key):
    secret = dockerconfigjson({key: {"auth": auth()}})

    assert secret.credentials == ()
    assert matching_credentials("quay.io/a", [secret]) == []


def test_a_key_that_looks_like_an_api_path_is_kept_after_normalizing():
    """`host/v1/v1/x` drops one `v1` (the API root); the second is a real path segment and must stay."""
    (credential,) = dockerconfigjson({"https://quay.io/v1/v1/x": {"auth": auth()}}).credentials

    assert credential.registry == "quay.io/v1/x"
    assert matching_credentials("quay.io/v1/x/app", [PullSecret("s", (credential,))]) == [credential]
    assert matching_credentials("quay.io/x/app", [PullSecret("s", (credential,))]) == []


def test_secret_from_api_dict_with_string_data_overriding_data():
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "pull", "namespace": "team"},
        "type": DOCKER_CONFIG_JSON_TYPE,
        "data": {DOCKER_CONFIG_JSON_KEY: b64("not json")},
        "stringData": {DOCKER_CONFIG_JSON_KEY: CONFIG_JSON},
    }

    assert pull_secret_from_object(secret).credentials == (Credential("quay.io", "team/pull", USERNAME, PASSWORD),)


def test_secret_from_kubernetes_client_object():
    secret = V1Secret(
        metadata=V1ObjectMeta(name="pull", namespace="team"),
        type=DOCKERCFG_TYPE,
        data={DOCKERCFG_KEY: b64(json.dumps({"gcr.io": {"auth": auth()}}))},
    )

    assert pull_secret_from_object(secret).credentials == (Credential("gcr.io", "team/pull", USERNAME, PASSWORD),)


# --- Malformed secrets: clear errors, never a crash, never a credential -------------------------------------

JSON_WITH_SECRETS = json.dumps({"auths": {"quay.io": {"username": USERNAME, "password": PASSWORD}}})
ALLOWED = "kubernetes.io/dockerconfigjson (key .dockerconfigjson) or kubernetes.io/dockercfg (key .dockercfg)"

MALFORMED = [
    pytest.param(
        "Opaque",
        {DOCKER_CONFIG_JSON_KEY: b64(JSON_WITH_SECRETS)},
        f"its type is 'Opaque'; image pull secrets must have type {ALLOWED}",
        id="wrong-type",
    ),
    pytest.param(
        None,
        {DOCKER_CONFIG_JSON_KEY: b64(JSON_WITH_SECRETS)},
        f"it has no type; image pull secrets must have type {ALLOWED}",
        id="no-type",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKERCFG_KEY: b64(JSON_WITH_SECRETS)},
        "it has no '.dockerconfigjson' data key, which a kubernetes.io/dockerconfigjson secret needs",
        id="key-of-other-type",
    ),
    pytest.param(
        DOCKERCFG_TYPE,
        None,
        "it has no '.dockercfg' data key, which a kubernetes.io/dockercfg secret needs",
        id="no-data",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE, {DOCKER_CONFIG_JSON_KEY: ""}, "the value of .dockerconfigjson is empty", id="empty"
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: f"%%{PASSWORD}%%"},
        "the value of .dockerconfigjson is neither JSON nor valid base64",
        id="bad-base64",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b64(f"{PASSWORD} is not json")},
        "the value of .dockerconfigjson is not valid JSON: Expecting value at line 1 column 1",
        id="not-json",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: '{"auths": {"quay.io": {"password": "' + PASSWORD + '"'},
        "the value of .dockerconfigjson is not valid JSON: Expecting ',' delimiter at line 1 column 59",
        id="truncated-json",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b'{"auths": {"quay.io": {"password": "\xff' + PASSWORD.encode() + b'"}}}'},
        "the value of .dockerconfigjson is not UTF-8 text",
        id="not-utf8",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: "{" * 100_000},
        "the value of .dockerconfigjson is not valid JSON",
        id="unterminated-deep-nesting",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: '{"auths":' + "[" * 100_000 + "]" * 100_000 + "}"},
        "the value of .dockerconfigjson is JSON nested too deeply",
        id="deep-nesting",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: 12},
        "the value of .dockerconfigjson is a int, not text or bytes",
        id="value-not-text",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b64(json.dumps([PASSWORD]))},
        ".dockerconfigjson must hold a JSON object, not a list",
        id="json-list",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b64(json.dumps({"quay.io": {"password": PASSWORD}}))},
        '.dockerconfigjson has no "auths" object, so it holds no registry credentials (credsStore and credHelpers '
        "only work on the machine that ran docker login)",
        id="missing-auths",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b64(json.dumps({"auths": None, "credsStore": "desktop"}))},
        '.dockerconfigjson has no "auths" object, so it holds no registry credentials (credsStore and credHelpers '
        "only work on the machine that ran docker login)",
        id="null-auths",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b64(json.dumps({"auths": [PASSWORD]}))},
        '"auths" in .dockerconfigjson must be an object, not a list',
        id="auths-list",
    ),
    pytest.param(
        DOCKERCFG_TYPE,
        {DOCKERCFG_KEY: b64(JSON_WITH_SECRETS)},
        '.dockercfg holds an "auths" object, which is the .dockerconfigjson format; create the secret with type '
        "kubernetes.io/dockerconfigjson and key .dockerconfigjson",
        id="dockercfg-with-auths",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b64(json.dumps({"auths": {"quay.io": PASSWORD}}))},
        "the entry for registry 'quay.io' must be an object, not a string",
        id="entry-string",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b64(json.dumps({"auths": {"quay.io": {"password": 12345678}}}))},
        "the entry for registry 'quay.io' has a \"password\" that is a number, not a string",
        id="password-number",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b64(json.dumps({"auths": {"quay.io": {"auth": [PASSWORD]}}}))},
        "the entry for registry 'quay.io' has a \"auth\" that is a list, not a string",
        id="auth-list",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b64(json.dumps({"auths": {"quay.io": {"auth": PASSWORD + "!"}}}))},
        "the \"auth\" of the entry for registry 'quay.io' is not valid base64",
        id="auth-bad-base64",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b64(json.dumps({"auths": {"quay.io": {"auth": b64(PASSWORD)}}}))},
        'the "auth" of the entry for registry \'quay.io\' must be base64 of "username:password", but the decoded '
        'text has no ":"',
        id="auth-without-colon",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b64(json.dumps({"auths": {"quay.io": {"auth": b64(b"\xff:" + PASSWORD.encode())}}}))},
        "the \"auth\" of the entry for registry 'quay.io' does not decode to UTF-8 text",
        id="auth-not-utf8",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {
            DOCKER_CONFIG_JSON_KEY: b64(
                json.dumps({"auths": {f"https://{USERNAME}:{PASSWORD}@quay.io/v1/": {"auth": "%%"}}})
            )
        },
        "the \"auth\" of the entry for registry 'quay.io' is not valid base64",
        id="user-info-in-key-not-shown",
    ),
    pytest.param(
        DOCKER_CONFIG_JSON_TYPE,
        {DOCKER_CONFIG_JSON_KEY: b64(json.dumps({"auths": {f"ftp://{USERNAME}/{PASSWORD}@x y": {"auth": "%%"}}}))},
        "the \"auth\" of the entry for registry 'x y' is not valid base64",
        id="unusable-key-checked-and-user-info-not-shown",
    ),
]


@pytest.mark.parametrize(("secret_type", "data", "reason"), MALFORMED)
def test_malformed_secret_errors_name_the_secret_and_the_problem(secret_type, data, reason):
    with pytest.raises(InvalidPullSecret) as caught:
        parse_pull_secret(name="pull", namespace="team", secret_type=secret_type, data=data)

    error = caught.value
    assert isinstance(error, ValueError)
    assert error.secret == "team/pull"
    assert error.reason.startswith(reason)
    assert str(error) == f"pull secret 'team/pull' cannot be used: {error.reason}"
    assert_no_secret_in(str(error), repr(error), *map(str, error.args), "".join(traceback.format_exception(error)))
    assert error.__cause__ is None


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        pytest.param({"metadata": {"name": "x"}, "type": 5}, "its type is not a string", id="type-number"),
        pytest.param(
            {"metadata": {"name": "x"}, "type": DOCKERCFG_TYPE, "data": [PASSWORD]},
            "its data is not a map of keys to values",
            id="data-list",
        ),
        pytest.param(
            {"metadata": "x", "type": "Opaque"},
            f"its type is 'Opaque'; image pull secrets must have type {ALLOWED}",
            id="metadata-not-a-map",
        ),
        pytest.param(object(), f"it has no type; image pull secrets must have type {ALLOWED}", id="not-a-secret"),
    ],
)
def test_malformed_secret_objects(secret, reason):
    with pytest.raises(InvalidPullSecret) as caught:
        pull_secret_from_object(secret)

    assert caught.value.reason == reason
    assert_no_secret_in(str(caught.value))


def test_credential_repr_and_str_hide_every_secret_field():
    credential = Credential("quay.io/org", "ns/pull", USERNAME, PASSWORD, TOKEN, TOKEN + "-registry")
    secret = PullSecret("ns/pull", (credential,))

    assert repr(credential) == (
        "Credential(registry='quay.io/org', source='ns/pull', username=<redacted>, password=<redacted>, "
        "identity_token=<redacted>, registry_token=<redacted>)"
    )
    assert str(credential) == "credentials for quay.io/org from secret ns/pull"
    assert_no_secret_in(
        repr(credential), str(credential), f"{credential}", f"{credential!r}", repr(secret), str(secret)
    )
    assert_no_secret_in(repr(matching_credentials("quay.io/org/app", [secret])))


def test_credential_repr_lists_only_the_fields_that_are_set():
    assert repr(Credential("r.io", "ns/s", registry_token=TOKEN)) == (
        "Credential(registry='r.io', source='ns/s', registry_token=<redacted>)"
    )


# --- Matching: kubelet semantics ---------------------------------------------------------------------------


def keyring(*keys: str) -> PullSecret:
    """One secret with one credential per key."""
    return dockerconfigjson({key: {"username": f"for {key}", "password": PASSWORD} for key in keys})


def matched_keys(image: str, *keys: str) -> list[str]:
    return [credential.registry for credential in matching_credentials(image, [keyring(*keys)])]


MATCHES = [
    # Host, host:port, path prefixes.
    pytest.param("quay.io/a/b", ["quay.io"], ["quay.io"], id="host"),
    pytest.param("quay.io/a/b", ["gcr.io"], [], id="other-host"),
    pytest.param("ex.com:5000/a", ["ex.com:5000"], ["ex.com:5000"], id="host-port"),
    pytest.param("ex.com/a", ["ex.com:5000"], [], id="key-port-image-none"),
    pytest.param("ex.com:5001/a", ["ex.com:5000"], [], id="different-port"),
    pytest.param("ex.com:5000/a", ["ex.com"], [], id="image-port-key-none"),
    pytest.param("quay.io/org/app", ["quay.io/org"], ["quay.io/org"], id="path-prefix"),
    pytest.param("quay.io/org", ["quay.io/org"], ["quay.io/org"], id="path-equal"),
    pytest.param("quay.io/other/app", ["quay.io/org"], [], id="other-path"),
    pytest.param("quay.io/orgx/app", ["quay.io/org"], [], id="path-prefix-not-at-boundary"),
    pytest.param("quay.io/org", ["quay.io/org/app"], [], id="key-longer-than-image"),
    pytest.param("quay.io/org/app", ["https://quay.io/v2/org/"], ["quay.io/org"], id="url-key"),
    pytest.param(
        "quay.io/org/team/app",
        ["quay.io", "quay.io/org/team", "quay.io/org", "quay.io/other"],
        ["quay.io/org/team", "quay.io/org", "quay.io"],
        id="most-specific-first",
    ),
    # A key is never a raw string prefix of the image's host.
    pytest.param("quay.io.evil.com/x", ["quay.io"], [], id="host-prefix-more-labels"),
    pytest.param("example.community/x", ["example.com"], [], id="host-prefix-inside-label"),
    pytest.param("registry.example.com/x", ["example.com"], [], id="parent-domain"),
    # Globs: one label each.
    pytest.param("a.example.com/x", ["*.example.com"], ["*.example.com"], id="glob-subdomain"),
    pytest.param("example.com/x", ["*.example.com"], [], id="glob-needs-a-label"),
    pytest.param("a.b.example.com/x", ["*.example.com"], [], id="glob-one-label-only"),
    pytest.param("a.b.registry.io/x", ["*.*.registry.io"], ["*.*.registry.io"], id="two-globs"),
    pytest.param("k8s.dev.io/x", ["k8s.*.io"], ["k8s.*.io"], id="glob-in-middle"),
    pytest.param("app1.k8s.io/x", ["app*.k8s.io"], ["app*.k8s.io"], id="partial-label-glob"),
    pytest.param("api.k8s.io/x", ["app*.k8s.io"], [], id="partial-label-glob-mismatch"),
    pytest.param("ab.io/x", ["a?.io"], ["a?.io"], id="question-mark"),
    pytest.param("a.example.com:5000/x", ["*.example.com"], [], id="glob-port-must-match"),
    pytest.param(
        "a.example.com/x",
        ["*.example.com", "a.example.com"],
        ["a.example.com", "*.example.com"],
        id="exact-before-glob",
    ),
    # Docker Hub and its other names.
    pytest.param("ubuntu", ["docker.io"], ["docker.io"], id="hub-docker-io"),
    pytest.param("ubuntu", ["https://index.docker.io/v1/"], ["index.docker.io"], id="hub-docker-login-key"),
    pytest.param("myorg/app", ["registry-1.docker.io"], ["registry-1.docker.io"], id="hub-registry-1"),
    pytest.param("docker.io/library/ubuntu", ["docker.io/library"], ["docker.io/library"], id="hub-library-path"),
    pytest.param("myorg/app", ["index.docker.io/myorg"], ["index.docker.io/myorg"], id="hub-alias-with-path"),
    pytest.param("other/app", ["index.docker.io/myorg"], [], id="hub-alias-other-path"),
    pytest.param("quay.io/x", ["https://index.docker.io/v1/"], [], id="hub-key-not-for-other-registries"),
    pytest.param("ubuntu", ["docker.io", "index.docker.io"], ["docker.io"], id="hub-alias-only-as-fallback"),
    pytest.param(
        "registry-1.docker.io/library/nginx", ["index.docker.io"], ["index.docker.io"], id="hub-image-by-api-host"
    ),
    pytest.param("localhost:5000/x", ["index.docker.io"], [], id="hub-not-for-localhost"),
    # Other hosts.
    pytest.param("localhost:5000/x", ["localhost:5000"], ["localhost:5000"], id="localhost"),
    pytest.param("localhost/x", ["localhost:5000"], [], id="localhost-port-mismatch"),
    pytest.param("[::1]:5000/x", ["[::1]:5000"], ["[::1]:5000"], id="ipv6"),
    pytest.param("[::1]/x", ["[::1]:5000"], [], id="ipv6-port-mismatch"),
    pytest.param("Quay.IO/x", ["QUAY.io"], ["quay.io"], id="host-case-insensitive"),
    pytest.param("quay.io/x", ["not a host!", "quay.io/a b"], [], id="unparsable-keys-never-match"),
]


@pytest.mark.parametrize(("image", "keys", "expected"), MATCHES)
def test_matching(image, keys, expected):
    assert matched_keys(image, *keys) == expected


def test_credentials_of_one_key_keep_the_order_of_the_secrets():
    first = dockerconfigjson({"quay.io": {"auth": auth("first", "x")}}, name="a")
    second = dockerconfigjson(
        {"quay.io": {"auth": auth("second", "x")}, "quay.io/org": {"auth": auth("org", "x")}}, name="b"
    )

    found = matching_credentials("quay.io/org/app", [first, second])

    assert [(credential.source, credential.username) for credential in found] == [
        ("ns/b", "org"),
        ("ns/a", "first"),
        ("ns/b", "second"),
    ]


def test_same_secret_twice_gives_each_credential_once():
    secret = keyring("quay.io")

    assert len(matching_credentials("quay.io/x", [secret, secret])) == 1


def test_matching_accepts_a_parsed_reference():
    assert matching_credentials(parse("quay.io/x@sha256:" + "a" * 64), [keyring("quay.io")])


def test_matching_an_invalid_image_raises_the_image_error():
    with pytest.raises(InvalidImageReference):
        matching_credentials("Not An Image", [keyring("quay.io")])


def test_no_secrets_no_credentials():
    assert matching_credentials("quay.io/x", []) == []


# --- Properties ---------------------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=20,
)
_entry_fields = st.sampled_from(["auth", "username", "password", "identitytoken", "registrytoken", "email"])
_entries = st.dictionaries(
    _entry_fields,
    st.one_of(
        st.just(PASSWORD),
        st.just(auth()),
        st.just(b64(PASSWORD)),
        st.just(b64(b"\xff" + PASSWORD.encode())),
        _json_values,
    ),
    max_size=4,
)
_registry_keys = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["quay.io", "https://index.docker.io/v1/", "*.example.com", "[::1]:5000", "a.io/b/c", "x:y@z/"]),
)
_configs = st.one_of(
    _json_values,
    st.dictionaries(_registry_keys, _entries | _json_values, max_size=4),
    st.builds(lambda auths: {"auths": auths}, st.dictionaries(_registry_keys, _entries | _json_values, max_size=4)),
)


def _encodings(config: object) -> st.SearchStrategy[object]:
    text = json.dumps(config)
    return st.sampled_from([config, text, text.encode(), b64(text), b64(text).encode()])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([DOCKER_CONFIG_JSON_TYPE, DOCKERCFG_TYPE]), _configs.flatmap(_encodings))
def test_arbitrary_configs_parse_or_fail_cleanly_without_leaking(secret_type, value):
    data_key = DOCKER_CONFIG_JSON_KEY if secret_type == DOCKER_CONFIG_JSON_TYPE else DOCKERCFG_KEY
    try:
        secret = parse_pull_secret(name="pull", namespace="ns", secret_type=secret_type, data={data_key: value})
    except InvalidPullSecret as err:
        assert err.secret == "ns/pull"
        assert_no_secret_in(str(err), "".join(traceback.format_exception(err)))
        return
    assert_no_secret_in(repr(secret))
    for credential in secret.credentials:
        assert credential.username or credential.password or credential.identity_token or credential.registry_token


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([DOCKER_CONFIG_JSON_TYPE, DOCKERCFG_TYPE, "Opaque", ""]),
    st.one_of(st.binary(), st.text(), st.binary().map(b64)),
)
def test_arbitrary_bytes_and_text_raise_only_invalid_pull_secret(secret_type, value):
    data = {DOCKER_CONFIG_JSON_KEY: value, DOCKERCFG_KEY: value}
    try:
        secret = parse_pull_secret(name="pull", secret_type=secret_type, data=data)
    except InvalidPullSecret as err:
        assert err.secret == "pull"
    else:
        assert secret_type in {DOCKER_CONFIG_JSON_TYPE, DOCKERCFG_TYPE}
        assert isinstance(secret, PullSecret)


@settings(deadline=None)
@given(st.one_of(st.none(), st.binary(), st.text(), _json_values))
def test_arbitrary_objects_raise_only_invalid_pull_secret(secret):
    try:
        pull_secret_from_object(secret)
    except InvalidPullSecret as err:
        assert err.reason
    else:
        assert isinstance(secret, dict)
        assert secret.get("type") in {DOCKER_CONFIG_JSON_TYPE, DOCKERCFG_TYPE}


_images = st.sampled_from(
    ["ubuntu", "myorg/app", "quay.io/org/app", "a.example.com/x", "localhost:5000/x", "[::1]:5000/x", "ex.com:5000/a"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_registry_keys, max_size=6), _images)
def test_matching_arbitrary_keys_never_raises_and_orders_by_specificity(keys, image):
    secret = dockerconfigjson({key: {"username": f"for {key}", "password": PASSWORD} for key in keys})

    found = matching_credentials(image, [secret])

    assert all(credential in secret.credentials for credential in found)
    registries = [credential.registry for credential in found]
    assert registries == sorted(registries, reverse=True)
