"""Chaos suite settings: the seed that fixes the fault schedule, and how many rounds each fault gets.

`make test` runs one round per fault (the smoke subset); `make chaos` sets `PREPULL_CHAOS_FULL=1` for more rounds.
The seed is printed at the start of every test and in every failure message; `PREPULL_CHAOS_SEED=<n>` replays it.
"""

from __future__ import annotations

import os
import random

import pytest

from tests.support.system_helpers import full_suite

SEED_ENV = "PREPULL_CHAOS_SEED"
SMOKE_ROUNDS = 1
FULL_ROUNDS = 3


@pytest.fixture
def chaos_seed(request: pytest.FixtureRequest) -> int:
    """The seed of this test's fault schedule: `PREPULL_CHAOS_SEED` when set, else a fresh random one."""
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    print(f"\n{request.node.nodeid}: {SEED_ENV}={seed}")
    return seed


@pytest.fixture
def chaos_rounds() -> int:
    """How many times each fault is injected: once in `make test`, more under `make chaos`."""
    return FULL_ROUNDS if full_suite() else SMOKE_ROUNDS
