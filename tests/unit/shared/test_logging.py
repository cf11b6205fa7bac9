"""JSON log lines: their shape, the object and trace they belong to, and redaction of anything secret-looking."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from services.shared import logging as shared_logging

JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJhdWQiOlsicHJlcHVsbC5pbyJdLCJzdWIiOiJzIn0.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture(autouse=True)
def restore_logging_levels():
    """`configure` sets process-wide levels; put them back so other tests log as before."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in shared_logging.NOISY_LOGGERS)]
    levels = [each.level for each in loggers]
    yield
    for each, level in zip(loggers, levels, strict=True):
        each.setLevel(level)


@pytest.fixture
def log_lines():
    """Configure JSON logging into a buffer; yield a function returning the parsed lines so far."""
    buffer = io.StringIO()
    handler = shared_logging.configure("debug", stream=buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logging.getLogger().removeHandler(handler)


def test_one_json_object_per_line_with_the_standard_fields(log_lines):
    logging.getLogger("prepull.test").info("pulled %s in %d ms\nsecond line", "nginx", 42, extra={"attempt": 2})

    [line] = log_lines()
    assert set(line) == {"time", "level", "logger", "message", "attempt"}
    assert line["level"] == "info"
    assert line["logger"] == "prepull.test"
    assert line["message"] == "pulled nginx in 42 ms\nsecond line"
    assert line["attempt"] == 2
    assert line["time"].endswith("Z") and "T" in line["time"]


def test_bound_logger_names_the_object_and_merges_extra(log_lines):
    base = logging.getLogger("prepull.test")
    namespaced = shared_logging.bind(base, kind="ImagePullJob", namespace="default", name="warm-nginx")
    cluster_scoped = shared_logging.bind(base, kind="NodeImage", name="node-a")

    namespaced.warning("reconciled", extra={"requeue_after": 30.0})
    cluster_scoped.info("status written")

    first, second = log_lines()
    assert first["object"] == "ImagePullJob/default/warm-nginx"
    assert first["requeue_after"] == 30.0
    assert first["level"] == "warning"
    assert second["object"] == "NodeImage/node-a"


def test_trace_and_span_ids_inside_a_span_only(log_lines):
    tracer = TracerProvider().get_tracer("test")
    log = logging.getLogger("prepull.test")

    log.info("outside")
    with tracer.start_as_current_span("work") as span:
        log.info("inside")
    outside, inside = log_lines()

    context = span.get_span_context()
    assert "trace_id" not in outside and "span_id" not in outside
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")


def test_exceptions_are_one_field_of_one_line(log_lines):
    try:
        raise RuntimeError("pull failed")
    except RuntimeError:
        logging.getLogger("prepull.test").exception("giving up")

    [line] = log_lines()
    assert line["message"] == "giving up"
    assert "Traceback" in line["exception"] and "RuntimeError: pull failed" in line["exception"]


@pytest.mark.parametrize(
    ("message", "args", "leaked", "kept"),
    [
        pytest.param(
            "header %s", ("Authorization: Bearer abc.def-ghi",), "abc.def-ghi", "Authorization", id="bearer-arg"
        ),
        pytest.param("sending Bearer s3cr3t-t0ken now", (), "s3cr3t-t0ken", "now", id="bearer-inline"),
        pytest.param("token file read: %s", (JWT,), JWT[:20], "token file read", id="jwt"),
        pytest.param(
            'config {"auths": {"r": {"auth": "dXNlcjpwYXNz"}}}', (), "dXNlcjpwYXNz", '"auths"', id="docker-auth"
        ),
        pytest.param("login password=hunter2 user=bob", (), "hunter2", "user=bob", id="password-field"),
        pytest.param("{'password': 'two words', 'username': 'bob'}", (), "two words", "'username': 'bob'", id="repr"),
        pytest.param("identitytoken=abcdef123456 next", (), "abcdef123456", "next", id="identity-token"),
        pytest.param("registry_token:abcdef123456 next", (), "abcdef123456", "next", id="colon-no-space"),
        pytest.param("header %s", ("Authorization: Bearer",), "!", "Authorization: Bearer", id="no-token-no-harm"),
    ],
)
def test_secrets_in_messages_are_redacted(log_lines, message, args, leaked, kept):
    logging.getLogger("prepull.test").info(message, *args)

    [line] = log_lines()
    assert leaked not in line["message"]
    assert kept in line["message"]
    assert (shared_logging.REDACTED in line["message"]) is (leaked != "!")


def test_harmless_text_is_left_alone(log_lines):
    text = (
        "pull secret default/regcred matched registry.example.com; node-name=node-a; tokens_refreshed=3; "
        "invalid credentials: check the secret; the bearer token expired"
    )
    logging.getLogger("prepull.test").info(text)

    assert log_lines()[0]["message"] == text


def test_secrets_in_extra_fields_and_exceptions_are_redacted(log_lines):
    try:
        raise ValueError(f"rejected Bearer {JWT}")
    except ValueError:
        logging.getLogger("prepull.test").exception(
            "review failed",
            extra={"password": "hunter2", "request": {"headers": {"authorization": "Bearer x"}}, "note": JWT},
        )

    [line] = log_lines()
    assert line["password"] == shared_logging.REDACTED
    assert line["request"] == {"headers": {"authorization": shared_logging.REDACTED}}
    assert line["note"] == shared_logging.REDACTED
    assert JWT not in line["exception"] and "rejected Bearer" in line["exception"]


def test_configure_is_idempotent_and_caps_loggers_that_dump_bodies():
    first, second = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    try:
        shared_logging.configure("debug", stream=first)
        handler = shared_logging.configure("info", stream=second)
        logging.getLogger("prepull.test").info("once")
        logging.getLogger("prepull.test").debug("below threshold")

        assert first.getvalue() == ""
        assert [json.loads(line)["message"] for line in second.getvalue().splitlines()] == ["once"]
        assert logging.getLogger("kubernetes.client.rest").level == logging.WARNING
        assert logging.getLogger("urllib3").level == logging.WARNING
    finally:
        root.removeHandler(handler)


def test_unknown_level_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        shared_logging.configure("loud")
