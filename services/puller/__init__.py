"""The puller: the per-node agent that pulls images through the container runtime (CRI)."""

__all__ = [
    "app",
    "credentials_client",
    "cri",
    "grpcserver",
    "inventory",
    "localpull",
    "logic",
    "metrics",
    "progress",
    "pullevents",
    "reconciler",
    "servicer",
    "settings",
    "simcri",
    "statusbook",
    "statuswriter",
    "tracelinks",
    "workers",
]
