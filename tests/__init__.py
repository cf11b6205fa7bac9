"""prepull tests."""
