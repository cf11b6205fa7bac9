"""Applying an RFC 7386 JSON merge patch, as the apiserver does, for in-memory apiservers in unit tests.

The services only ever *compute* merge patches (`services.shared.kube.patching.merge_patch`); applying one is
the apiserver's job, so this lives with the tests.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["apply_merge_patch"]


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """`target` with `patch` applied (RFC 7386: null deletes, objects merge, anything else replaces)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result
