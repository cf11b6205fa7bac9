"""Code every prepull service uses: API types, image references, Kubernetes and gRPC helpers, telemetry.

Nothing here imports a service; the services import this package and never each other.
"""
