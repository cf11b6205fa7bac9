"""prepull: Kubernetes image pre-download, split into three services and a shared package."""
