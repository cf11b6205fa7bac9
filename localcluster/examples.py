"""The example manifests in deploy/examples/, with their registry placeholders filled in.

The examples name images as `${REGISTRY}/…` and `${PRIVATE_REGISTRY}/…` (envsubst syntax, so a user can fill them
in with `envsubst` on a real cluster), because no registry address is right everywhere. The demo and the tests
fill them in with the local cluster's open and auth registries and apply the result, so an example that no
longer matches the API fails a test instead of a user.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "deploy" / "examples"
SELECTOR_JOB = EXAMPLES_DIR / "imagepulljob-selector.yaml"
PRIVATE_LIST_JOB = EXAMPLES_DIR / "imagelistpulljob-private.yaml"
NEVER_JOB = EXAMPLES_DIR / "imagepulljob-never.yaml"
JOB_EXAMPLES = (SELECTOR_JOB, PRIVATE_LIST_JOB, NEVER_JOB)
# The Secret the private example names; whoever applies that example creates it first.
PULL_SECRET = "demo-registry-auth"


def placeholders(registry: str, private_registry: str) -> dict[str, str]:
    """The values of every placeholder the examples use."""
    return {"REGISTRY": registry, "PRIVATE_REGISTRY": private_registry}


def render(path: Path, values: Mapping[str, str]) -> str:
    """The manifest text with `${NAME}` placeholders replaced; a placeholder without a value raises KeyError."""
    return string.Template(path.read_text()).substitute(values)


def rendered_object(path: Path, values: Mapping[str, str]) -> dict[str, Any]:
    """The one object an example file holds, with placeholders replaced."""
    document: dict[str, Any] = yaml.safe_load(render(path, values))
    return document
