"""Install and read the manifests in deploy/ the way a user would: `kubectl apply -k deploy/`.

The CRD and RBAC tests both need prepull's API installed on the session's real apiserver; applying the
kustomization (server-side, so re-applying from several test modules is idempotent) also proves the
kustomization itself is valid.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Protocol

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"
CRD_DIR = DEPLOY_DIR / "crd"
CRD_NAMES = ("imagepulljobs.prepull.io", "imagelistpulljobs.prepull.io", "nodeimages.prepull.io")
FIELD_MANAGER = "prepull-tests"
ESTABLISHED_TIMEOUT = "120s"


class Kubectl(Protocol):
    """What the helpers need of the control plane fixture: kubectl as the cluster admin."""

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run kubectl with the admin kubeconfig."""
        ...


def apply_deploy(cluster: Kubectl) -> None:
    """Apply deploy/ (namespace, CRDs, RBAC) and wait until the CRDs serve."""
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}", "-k", str(DEPLOY_DIR)
    )
    crds = [f"crd/{name}" for name in CRD_NAMES]
    cluster.kubectl("wait", "--for=condition=Established", f"--timeout={ESTABLISHED_TIMEOUT}", *crds)


def kustomization_documents() -> list[dict[str, Any]]:
    """Every object the kustomization lists, parsed from the files (no kustomize transformations are used)."""
    kustomization = yaml.safe_load((DEPLOY_DIR / "kustomization.yaml").read_text())
    documents: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        documents.extend(doc for doc in yaml.safe_load_all((DEPLOY_DIR / resource).read_text()) if doc)
    return documents


def load_crd(plural: str) -> dict[str, Any]:
    """The CustomResourceDefinition for `plural` (e.g. "imagepulljobs") from deploy/crd/."""
    document: dict[str, Any] = yaml.safe_load((CRD_DIR / f"prepull.io_{plural}.yaml").read_text())
    return document


def crd_schema(plural: str) -> dict[str, Any]:
    """The openAPIV3Schema of the single served version of a CRD."""
    (version,) = load_crd(plural)["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema
