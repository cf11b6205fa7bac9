"""The puller's decisions as pure functions: observed state and `now` in, a plan or a status out.

Nothing here imports grpc, kubernetes or the generated stubs, so every rule of upstream-behaviour.md §5 that
the puller follows (which tags need a worker, phase transitions, retry and timeout arithmetic, the disk
guard, how a status is built) is unit-tested without a cluster or a runtime.
"""

__all__ = ["backoff", "diskguard", "inventory", "layerprogress", "plan", "tagstate"]
