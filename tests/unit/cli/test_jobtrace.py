"""Naming a job on the command line the way kubectl names it."""

from __future__ import annotations

import pytest

from services.cli import jobtrace
from services.shared.kube import resources


@pytest.mark.parametrize(
    ("reference", "resource", "name"),
    [
        pytest.param("web", resources.IMAGE_PULL_JOBS, "web", id="bare-name-is-an-imagepulljob"),
        pytest.param("ipj/web", resources.IMAGE_PULL_JOBS, "web", id="short-name"),
        pytest.param("imagepulljobs/web", resources.IMAGE_PULL_JOBS, "web", id="plural"),
        pytest.param("ImagePullJob/web", resources.IMAGE_PULL_JOBS, "web", id="kind-case-insensitive"),
        pytest.param("imagepulljob.prepull.io/web", resources.IMAGE_PULL_JOBS, "web", id="group-qualified"),
        pytest.param("ilpj/base", resources.IMAGE_LIST_PULL_JOBS, "base", id="list-job"),
    ],
)
def test_job_references(reference: str, resource: resources.Resource, name: str) -> None:
    assert jobtrace.job_resource(reference) == (resource, name)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        pytest.param("pod/web", "not a job kind", id="other-kind"),
        pytest.param("ipj/", "no job name", id="no-name"),
    ],
)
def test_bad_job_references(reference: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        jobtrace.job_resource(reference)
