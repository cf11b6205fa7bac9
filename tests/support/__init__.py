"""Test-only support: fixtures for the real components, builders."""
