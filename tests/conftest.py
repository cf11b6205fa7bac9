"""Test-wide configuration: fixtures for the real local-cluster components are pytest plugins in tests/support."""

pytest_plugins = [
    "tests.support.controlplane_fixtures",
    "tests.support.node_fixtures",
    "tests.support.api_fixtures",
    "tests.support.scheduler_harness",
]
