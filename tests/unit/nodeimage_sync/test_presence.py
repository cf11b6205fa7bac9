"""Matching 'which nodes hold image X' queries against reported images, by reference and by digest."""

from __future__ import annotations

import pytest

from services.nodeimage_sync.logic import presence
from services.shared.api import imageref

ID = "sha256:" + "a" * 64
MANIFEST = "sha256:" + "b" * 64
NGINX = presence.InventoryImage(
    digest=ID,
    repo_tags=("docker.io/library/nginx:1.25", "localhost:5000/team/app:v1"),
    repo_digests=(f"docker.io/library/nginx@{MANIFEST}",),
    size_bytes=10,
)
KEYS = presence.keys_of(NGINX)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("nginx:1.25", True, id="familiar-tag"),
        pytest.param("docker.io/library/nginx:1.25", True, id="qualified-tag"),
        pytest.param("index.docker.io/library/nginx:1.25", True, id="legacy-hub"),
        pytest.param("nginx", False, id="default-latest-not-held"),
        pytest.param("nginx:1.26", False, id="other-tag"),
        pytest.param("localhost:5000/team/app:v1", True, id="private-registry"),
        pytest.param(f"nginx@{MANIFEST}", True, id="reference-with-digest"),
        pytest.param(f"nginx:1.25@{MANIFEST}", True, id="tag-and-digest"),
        pytest.param(f"other@{MANIFEST}", False, id="digest-of-other-repo"),
        pytest.param(ID, True, id="bare-image-id"),
        pytest.param(MANIFEST, True, id="bare-manifest-digest"),
        pytest.param("sha256:" + "c" * 64, False, id="bare-unknown-digest"),
    ],
)
def test_matches(query, expected):
    assert presence.matches(presence.parse_query(query), KEYS) is expected


def test_query_is_normalized():
    assert presence.parse_query("nginx").normalized == "docker.io/library/nginx:latest"
    assert presence.parse_query(ID).normalized == ID


def test_invalid_query_raises():
    with pytest.raises(imageref.InvalidImageReference):
        presence.parse_query("Not A Ref")


def test_unparsable_reported_tags_are_skipped():
    keys = presence.keys_of(presence.InventoryImage(digest=ID, repo_tags=("<none>:<none>", "busybox:1")))
    assert keys.references == frozenset({"docker.io/library/busybox:1"})
