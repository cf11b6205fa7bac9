"""nodeimage_sync: one NodeImage per Node, NodeImage maintenance, and the cluster image inventory.

`app` composes the service; `logic` holds the pure decisions; `reconciler`, `triggering`, `owners` and `ownwrites`
are the NodeImage controller's I/O side; `inventory`, `queries`, `nodewatch` and `servicer` serve `NodeInventory`.
"""

__all__ = [
    "app",
    "inventory",
    "logic",
    "metrics",
    "nodewatch",
    "owners",
    "ownwrites",
    "queries",
    "reconciler",
    "servicer",
    "settings",
    "triggering",
]
