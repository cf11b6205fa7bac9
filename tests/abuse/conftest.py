"""One running product (1 node) shared by every abuse test; abuse must never take it down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.cluster import LocalCluster
from localcluster.system import PrepullSystem
from tests.support.system_helpers import running_system


@pytest.fixture(scope="package")
def abuse_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, PrepullSystem]]:
    with running_system(Path(tmp_path_factory.mktemp("abuse")), node_count=1) as system:
        yield system
