"""Pure-logic tests: no cluster, no network."""
