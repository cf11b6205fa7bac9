"""Session fixture that installs prepull's CRDs (deploy/crd/) into the session's control plane."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.controlplane import ControlPlane

CRD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "crd"
CRD_NAMES = ("imagepulljobs.prepull.io", "imagelistpulljobs.prepull.io", "nodeimages.prepull.io")


@pytest.fixture(scope="session")
def prepull_crds(control_plane: ControlPlane) -> tuple[str, ...]:
    """Apply every CRD in deploy/crd/ with kubectl and wait until the apiserver serves them (Established)."""
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    for name in CRD_NAMES:
        control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    return CRD_NAMES
