"""The Kubernetes layer every prepull service builds on: the only package that imports `kubernetes`.

The services are synchronous and thread-based, in the manner of client-go: informers keep an in-memory copy
of the objects a controller cares about and call handlers that enqueue keys; a de-duplicating work queue
hands each key to one worker thread at a time; workers reconcile and write back through `kubeapi.KubeApi`.
Everything that talks to the apiserver raises the errors of `errors`, never the client's `ApiException`, so
the client library stays replaceable and callers handle one vocabulary.

Import modules, not names: `from services.shared.kube import informer` → `informer.Informer`.
"""

__all__ = [
    "backoff",
    "client",
    "controller",
    "errors",
    "eventcorrelation",
    "events",
    "informer",
    "kubeapi",
    "leaderelection",
    "leases",
    "lightimport",
    "objects",
    "patching",
    "ratelimit",
    "resources",
    "store",
    "watching",
    "workqueue",
]
