"""End-to-end tests: the three services as processes on the local cluster."""
