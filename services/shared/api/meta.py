"""Kubernetes metadata types our objects embed: `ObjectMeta`, `OwnerReference` and core/v1 `ObjectReference`.

Only the fields our services read or write are modelled; everything else the apiserver returns
(`managedFields`, `selfLink`, …) stays in `extra` and is written back unchanged. The field semantics follow
the Go types in `k8s.io/apimachinery` and `k8s.io/api` (see `wire` for how Go tags map to defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from services.shared.api import wire

__all__ = ["ObjectMeta", "ObjectReference", "OwnerReference"]


@dataclass(frozen=True, kw_only=True, slots=True)
class OwnerReference(wire.WireObject):
    """metav1.OwnerReference: makes the garbage collector delete an object with its owner."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectMeta(wire.WireObject):
    """metav1.ObjectMeta, limited to what the services use."""

    name: str = ""
    generate_name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    deletion_grace_period_seconds: int | None = None
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None
    owner_references: tuple[OwnerReference, ...] | None = None
    finalizers: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectReference(wire.WireObject):
    """core/v1 ObjectReference: how a NodeImage tag entry names the jobs that own it.

    Upstream writes `apiVersion`, `kind`, `namespace`, `name` and `uid`; the other fields exist in the
    core type and are kept for fidelity. Every field is optional (`omitempty`) in the Go type.
    """

    SHARED: ClassVar[bool] = True

    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""
    field_path: str = ""
