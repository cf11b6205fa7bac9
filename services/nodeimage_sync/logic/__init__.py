"""Pure decisions of nodeimage_sync: observed state and `now` in, a plan out; no Kubernetes or gRPC imports.

- `lifecycle`: whether a Node's NodeImage should be created, waited for, deleted or maintained (upstream §4.1);
- `triggers`: which Node events are worth a reconcile, and after how long;
- `spec`: NodeImage spec maintenance (labels, createdAt, owners, TTL, empty images; upstream §4.2);
- `status`: NodeImage status maintenance (response timeout, deadline, counts; upstream §4.4);
- `requeue`: when to look at a NodeImage again;
- `jobtraces`: which jobs' traces a NodeImage write belongs to (design §4);
- `labelselector`: Kubernetes label selector syntax, parsed and matched (NodeInventory queries);
- `presence`: which of a node's reported images match a query (NodeInventory.WhichNodes).
"""

__all__ = ["jobtraces", "labelselector", "lifecycle", "presence", "requeue", "spec", "status", "triggers"]
