"""Unit tests of services/shared."""
