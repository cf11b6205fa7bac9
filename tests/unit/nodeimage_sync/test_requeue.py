"""Requeue timing: the soonest timer, with short waits stretched to 3 s + jitter (upstream §4.1)."""

from __future__ import annotations

import pytest

from services.nodeimage_sync.logic.requeue import requeue_after


@pytest.mark.parametrize(
    ("waits", "rand", "expected"),
    [
        pytest.param([], 0.5, None, id="nothing-pending"),
        pytest.param([None, None], 0.5, None, id="only-none"),
        pytest.param([120.0, 45.0, None], 0.5, 45.0, id="soonest-wins"),
        pytest.param([0.2, 50.0], 0.0, 3.0, id="short-wait-floor"),
        pytest.param([2.9], 0.5, 4.0, id="short-wait-jitter"),
        pytest.param([3.0], 0.9, 3.0, id="at-minimum-unchanged"),
    ],
)
def test_requeue_after(waits, rand, expected):
    assert requeue_after(waits, minimum=3.0, jitter=2.0, rand=rand) == expected
