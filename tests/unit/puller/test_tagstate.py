"""Tag entries become pull tasks; workers move a tag's status through the phases."""

from __future__ import annotations

import datetime

import pytest

from services.puller.logic import tagstate
from services.puller.logic.tagstate import TagKey
from services.shared.api import nodeimage
from tests.unit.puller.builders import T0, a_node_image, a_tag

DIGEST = "sha256:" + "a" * 64


def task_of(image: str, tag: dict[str, object], **extra: object) -> tagstate.PullTask:
    node_image = a_node_image({image: [tag]}, **extra)  # type: ignore[arg-type]
    spec = (node_image.spec.images or {})[image]
    return tagstate.task_for(TagKey(image, spec.tags[0].tag), spec, spec.tags[0])


@pytest.mark.parametrize(
    ("image", "tag", "reference"),
    [
        pytest.param("ubuntu", "latest", "docker.io/library/ubuntu:latest", id="docker-hub-official"),
        pytest.param("foo/bar", "v1", "docker.io/foo/bar:v1", id="docker-hub-user"),
        pytest.param("reg:5000/a/b", "1.0", "reg:5000/a/b:1.0", id="private-registry"),
        pytest.param("reg:5000/a/b", DIGEST, f"reg:5000/a/b@{DIGEST}", id="digest-joined-with-at"),
    ],
)
def test_reference_is_pullable(image: str, tag: str, reference: str) -> None:
    task = task_of(image, a_tag(tag))
    assert task.reference == reference
    assert task.invalid_reason == ""


def test_invalid_entry_carries_the_reason() -> None:
    task = task_of("Ubuntu", a_tag("latest"))
    assert task.reference == ""
    assert "must be lowercase" in task.invalid_reason


@pytest.mark.parametrize(
    ("policy", "always"),
    [("IfNotPresent", False), ("Always", True), ("", True), ("Sometimes", True)],
    ids=["if-not-present", "always", "unset-pulls", "unknown-pulls"],
)
def test_only_if_not_present_checks_presence(policy: str, always: bool) -> None:
    assert task_of("ubuntu", a_tag("latest", policy=policy)).always_pull is always


def test_pull_policy_defaults_and_values() -> None:
    defaults = task_of("ubuntu", a_tag("latest"))
    assert (defaults.timeout_seconds, defaults.attempts, defaults.active_deadline_seconds) == (600, 4, None)
    given = task_of("ubuntu", a_tag("latest", timeout_seconds=30, backoff_limit=1, active_deadline_seconds=90))
    assert (given.timeout_seconds, given.attempts, given.active_deadline_seconds) == (30, 2, 90)


def test_pull_secrets_mean_credentials_are_needed() -> None:
    assert not task_of("ubuntu", a_tag("latest")).has_pull_secrets
    with_secret = task_of("ubuntu", a_tag("latest"), secrets={"ubuntu": [{"namespace": "ns", "name": "s"}]})
    assert with_secret.has_pull_secrets


def test_phase_transitions() -> None:
    key = TagKey("ubuntu", "latest")
    waiting = tagstate.waiting(key, 2)
    assert (waiting.phase, waiting.version, waiting.start_time) == ("Waiting", 2, None)
    pulling = tagstate.pulling(key, 2, T0)
    assert (pulling.phase, pulling.start_time, tagstate.is_final(pulling)) == ("Pulling", T0, False)
    done = T0 + datetime.timedelta(seconds=5)
    succeeded = tagstate.succeeded(pulling, image_name="ubuntu", runtime_id="sha256:abc", now=done)
    assert succeeded.phase == "Succeeded"
    assert succeeded.image_id == "ubuntu@sha256:abc"
    assert (succeeded.progress, succeeded.start_time, succeeded.completion_time) == (100, T0, done)
    assert tagstate.is_final(succeeded)
    failed = tagstate.failed(pulling, message="not found", now=done)
    assert (failed.phase, failed.message, failed.completion_time, failed.version) == ("Failed", "not found", done, 2)


def test_failure_never_has_an_empty_message() -> None:
    failed = tagstate.failed(tagstate.waiting(TagKey("a", "b"), 0), message="", now=T0)
    assert failed.message


@pytest.mark.parametrize(
    ("done", "total", "percent"),
    [(0, 0, 0), (50, 100, 50), (100, 100, 99), (1, 3, 33)],
    ids=["unknown-total", "half", "complete-bytes-still-pulling", "rounds-down"],
)
def test_progress_percentage_stays_below_100_until_success(done: int, total: int, percent: int) -> None:
    status = tagstate.with_progress(tagstate.pulling(TagKey("a", "b"), 0, T0), done=done, total=total)
    assert status.progress == percent
    assert status.pulled_bytes == done


def test_key_prints_like_a_reference() -> None:
    assert str(TagKey("ubuntu", "latest")) == "ubuntu:latest"
    assert str(TagKey("ubuntu", DIGEST)) == f"ubuntu@{DIGEST}"
    assert isinstance(tagstate.waiting(TagKey("a", "b"), 0), nodeimage.ImageTagStatus)
