"""Pure decisions of the scheduler: observed state and `now` in, a plan out; no Kubernetes or gRPC imports."""
