"""The puller: the per-node agent that pulls images through the container runtime (CRI)."""
