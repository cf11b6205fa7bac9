"""The example manifests in deploy/examples/ are valid against the real apiserver with prepull's CRDs.

Each example is rendered with its registry placeholders filled in (as the demo does), accepted by a
server-side dry run, then created for real and read back: an example that drifts from the API fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localcluster import examples
from localcluster.controlplane import ControlPlane

pytestmark = pytest.mark.integration

REGISTRY = "registry.example.com:5000"
PRIVATE_REGISTRY = "private.example.com"
PLURALS = {"ImagePullJob": "imagepulljobs", "ImageListPullJob": "imagelistpulljobs"}


def test_every_top_level_example_is_covered_and_listed_in_the_readme() -> None:
    files = {path.name for path in examples.EXAMPLES_DIR.glob("*.yaml")}
    assert files == {path.name for path in examples.JOB_EXAMPLES}
    readme = (examples.EXAMPLES_DIR / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in files)


@pytest.mark.parametrize("example", examples.JOB_EXAMPLES, ids=lambda path: path.name)
def test_example_is_accepted_by_the_apiserver_and_keeps_its_images(
    example: Path,
    control_plane: ControlPlane,
    prepull_crds: tuple[str, ...],
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    values = examples.placeholders(REGISTRY, PRIVATE_REGISTRY)
    rendered = tmp_path / example.name
    rendered.write_text(examples.render(example, values))
    expected = examples.rendered_object(example, values)
    kind, name = expected["kind"], expected["metadata"]["name"]

    dry_run = control_plane.kubectl("apply", "--dry-run=server", "-n", kube_namespace, "-f", str(rendered))
    assert f"{name} created (server dry run)" in dry_run.stdout
    missing = control_plane.kubectl("get", PLURALS[kind], name, "-n", kube_namespace, check=False)
    assert missing.returncode != 0, "a dry run must not create the object"

    control_plane.kubectl("apply", "-n", kube_namespace, "-f", str(rendered))
    stored = json.loads(control_plane.kubectl("get", PLURALS[kind], name, "-n", kube_namespace, "-o", "json").stdout)
    assert stored["spec"] == stored["spec"] | expected["spec"]
    images = [stored["spec"]["image"]] if kind == "ImagePullJob" else stored["spec"]["images"]
    assert all(image.startswith((f"{REGISTRY}/", f"{PRIVATE_REGISTRY}/")) for image in images), images
    assert "$" not in rendered.read_text(), "every placeholder has a value"


def test_a_placeholder_without_a_value_is_an_error() -> None:
    with pytest.raises(KeyError, match="PRIVATE_REGISTRY"):
        examples.render(examples.PRIVATE_LIST_JOB, {"REGISTRY": REGISTRY})
