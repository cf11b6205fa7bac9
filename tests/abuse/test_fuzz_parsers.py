"""Fuzzing the image reference parser and the pull secret reader/matcher for crashes (hypothesis).

The unit tests (tests/unit/shared) hold the properties with a fixed example budget; here the inputs are
mutations of valid values and whole Secret-shaped objects, and the budget grows under `make chaos`
(`PREPULL_CHAOS_FULL=1`). The contract: the only exception ever raised is the module's own refusal
(`InvalidImageReference`, `InvalidPullSecret`), whose message never contains a password.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.shared import credentials
from services.shared.api import imageref
from tests.support.system_helpers import full_suite

EXAMPLES = 20_000 if full_suite() else 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID_REFERENCES = [
    "nginx",
    "nginx:1.25",
    "library/ubuntu:latest",
    "quay.io/org/app:v1",
    "127.0.0.1:5000/a/b/c:tag",
    "[::1]:5000/x:y",
    "docker.io/library/busybox@sha256:" + "ab" * 32,
    "registry.example.com:443/team/img:1.0@sha256:" + "cd" * 32,
]
SECRET_PASSWORD = "fuzz-secret-password-\u00e9"


@st.composite
def mutated_references(draw: st.DrawFn) -> str:
    """A valid reference with a few characters inserted, deleted or replaced (anything, including unicode)."""
    text = draw(st.sampled_from(VALID_REFERENCES))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.one_of(st.characters(), st.sampled_from(list(":/@[]._-Aa0 \t\n\x00"))))
        if action == "insert":
            text = text[:position] + char + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + 1 :]
        else:
            text = text[:position] + char + text[position + 1 :]
    return text


@FUZZ
@given(st.one_of(mutated_references(), st.text(max_size=600), st.binary(max_size=64).map(repr)))
def test_reference_parser_accepts_or_refuses_but_never_crashes(text: str) -> None:
    try:
        parsed = imageref.parse(text)
    except imageref.InvalidImageReference as refusal:
        assert str(refusal)
        return
    assert imageref.parse(str(parsed)) == parsed


@FUZZ
@given(st.one_of(st.text(max_size=300), mutated_references()), st.text(max_size=100))
def test_nodeimage_entry_rebuild_never_crashes(image: str, tag: str) -> None:
    with contextlib.suppress(imageref.InvalidImageReference):
        imageref.from_nodeimage_entry(image, tag)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=20,
)


@st.composite
def secret_objects(draw: st.DrawFn) -> dict[str, Any]:
    """Secret-shaped dicts: sometimes well-formed dockerconfigjson with odd keys, often broken at some level."""
    auth = base64.b64encode(f"user:{SECRET_PASSWORD}".encode()).decode()
    key = draw(st.one_of(mutated_references(), st.text(max_size=60)))
    entry = draw(
        st.one_of(st.just({"auth": auth}), st.just({"username": "u", "password": SECRET_PASSWORD}), json_values)
    )
    config: Any = draw(st.one_of(st.just({"auths": {key: entry}}), json_values))
    encoded = draw(
        st.one_of(
            st.just(base64.b64encode(json.dumps(config).encode()).decode()),
            st.just(json.dumps(config)),
            st.binary(max_size=80).map(lambda raw: base64.b64encode(raw).decode()),
            st.text(max_size=80),
            json_values,
        )
    )
    secret_type = draw(
        st.one_of(
            st.sampled_from(["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg", "Opaque", ""]),
            st.none(),
            json_values,
        )
    )
    data_key = draw(st.sampled_from([".dockerconfigjson", ".dockercfg", "other"]))
    data: Any = draw(st.one_of(st.just({data_key: encoded}), json_values))
    return {"metadata": {"name": "fuzz", "namespace": "ns"}, "type": secret_type, "data": data}


@FUZZ
@given(secret_objects(), st.one_of(mutated_references(), st.text(max_size=100)))
def test_secret_reader_and_matcher_never_crash_nor_leak(secret: dict[str, Any], image: str) -> None:
    try:
        parsed = credentials.pull_secret_from_object(secret)
    except credentials.InvalidPullSecret as refusal:
        assert SECRET_PASSWORD not in str(refusal)
        return
    try:
        found = credentials.matching_credentials(image, [parsed])
    except imageref.InvalidImageReference:
        return
    for credential in found:
        assert SECRET_PASSWORD not in repr(credential) and SECRET_PASSWORD not in str(credential)


@pytest.mark.parametrize("secret_type", [None, "Opaque", "kubernetes.io/basic-auth", 42])
def test_wrong_secret_types_are_refused_with_their_name(secret_type: object) -> None:
    secret = {"metadata": {"name": "wrong", "namespace": "ns"}, "type": secret_type, "data": {}}
    with pytest.raises(credentials.InvalidPullSecret, match="ns/wrong"):
        credentials.pull_secret_from_object(secret)
