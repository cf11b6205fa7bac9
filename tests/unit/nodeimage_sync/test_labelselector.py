"""Label selectors in `kubectl -l` syntax, matched as the apiserver matches them."""

from __future__ import annotations

import pytest

from services.nodeimage_sync.logic import labelselector

LABELS = {"zone": "a", "disk": "ssd", "kubernetes.io/os": "linux", "empty": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", True, id="empty-selects-all"),
        pytest.param("zone=a", True, id="equals"),
        pytest.param("zone==a", True, id="double-equals"),
        pytest.param("zone=b", False, id="equals-other"),
        pytest.param("zone!=b", True, id="not-equals"),
        pytest.param("missing!=b", True, id="not-equals-absent-key"),
        pytest.param("zone in (a, b)", True, id="in"),
        pytest.param("zone in (b,c)", False, id="in-miss"),
        pytest.param("zone notin (b)", True, id="notin"),
        pytest.param("missing notin (b)", True, id="notin-absent"),
        pytest.param("disk", True, id="exists"),
        pytest.param("!disk", False, id="not-exists"),
        pytest.param("!missing", True, id="not-exists-absent"),
        pytest.param("zone=a,disk=ssd", True, id="and"),
        pytest.param("zone=a,disk=hdd", False, id="and-miss"),
        pytest.param("kubernetes.io/os=linux", True, id="prefixed-key"),
        pytest.param("empty=", True, id="empty-value"),
        pytest.param(" zone = a , disk ", True, id="spaces"),
    ],
)
def test_matches(text, expected):
    assert labelselector.parse(text).matches(LABELS) is expected


@pytest.mark.parametrize(
    "text",
    ["zone=a,", "zone in ()", "zone in (a", "zone in a", "=a", "zone=a b", "zone<a", "Bad Key=1", "k=v@lue", "!"],
)
def test_invalid(text):
    with pytest.raises(labelselector.InvalidSelector):
        labelselector.parse(text)
