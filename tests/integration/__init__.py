"""Tests against the real components of the local cluster."""
