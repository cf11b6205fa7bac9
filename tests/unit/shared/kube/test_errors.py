"""Every way the client reports a failure becomes one member of our error tree, with what the server said."""

from __future__ import annotations

import json

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from services.shared.kube import errors

POOL = urllib3.HTTPSConnectionPool("127.0.0.1", 6443)


def status(code: int, reason: str, message: str = "msg", **details: object) -> dict[str, object]:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    if details:
        body["details"] = details
    return body


def api_exception(code: int, body: object) -> ApiException:
    exc = ApiException(status=code, reason="HTTP reason")
    exc.body = json.dumps(body).encode() if isinstance(body, dict) else body
    return exc


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        pytest.param(400, "BadRequest", errors.BadRequest, id="400"),
        pytest.param(401, "Unauthorized", errors.Unauthorized, id="401"),
        pytest.param(403, "Forbidden", errors.Forbidden, id="403"),
        pytest.param(404, "NotFound", errors.NotFound, id="404"),
        pytest.param(409, "Conflict", errors.Conflict, id="409-conflict"),
        pytest.param(409, "AlreadyExists", errors.AlreadyExists, id="409-already-exists"),
        pytest.param(410, "Expired", errors.Gone, id="410-expired"),
        pytest.param(410, "Gone", errors.Gone, id="410-gone"),
        pytest.param(422, "Invalid", errors.Invalid, id="422"),
        pytest.param(429, "TooManyRequests", errors.TooManyRequests, id="429"),
        pytest.param(500, "InternalError", errors.ServerError, id="500"),
        pytest.param(503, "ServiceUnavailable", errors.ServerError, id="503"),
        pytest.param(504, "Timeout", errors.ServerError, id="504"),
        pytest.param(405, "MethodNotAllowed", errors.KubeError, id="405-other"),
    ],
)
def test_status_answers_map_to_the_tree(code, reason, expected):
    error = errors.translate(api_exception(code, status(code, reason, "what happened")))
    assert type(error) is expected
    assert (error.code, error.reason, error.message) == (code, reason, "what happened")
    assert "what happened" in str(error)


def test_already_exists_is_not_a_conflict():
    error = errors.translate(api_exception(409, status(409, "AlreadyExists")))
    assert not isinstance(error, errors.Conflict)


def test_invalid_carries_the_field_causes():
    causes = [
        {"reason": "FieldValueInvalid", "message": "must be lowercase", "field": "metadata.name"},
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.image"},
    ]
    error = errors.translate(api_exception(422, status(422, "Invalid", "ConfigMap is invalid", causes=causes)))
    assert isinstance(error, errors.Invalid)
    assert [(c.field, c.message) for c in error.causes] == [
        ("metadata.name", "must be lowercase"),
        ("spec.image", "Required value"),
    ]
    assert "spec.image: Required value" in str(error)


def test_retry_after_is_exposed():
    error = errors.translate(api_exception(429, status(429, "TooManyRequests", retryAfterSeconds=3)))
    assert error.retry_after_seconds == 3


def test_a_body_that_is_not_a_status_falls_back_to_the_code():
    error = errors.translate(api_exception(502, b"<html>bad gateway</html>"))
    assert isinstance(error, errors.ServerError)
    assert error.code == 502
    assert "bad gateway" in error.message


def test_overlong_messages_are_cut():
    error = errors.translate(api_exception(500, status(500, "InternalError", "x" * 10_000)))
    assert len(error.message) == errors.MAX_MESSAGE_LENGTH


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(ApiException(status=0, reason="SSLError: certificate verify failed"), id="ssl"),
        pytest.param(
            urllib3.exceptions.MaxRetryError(POOL, "/api", ConnectionRefusedError("refused")), id="max-retries"
        ),
        pytest.param(urllib3.exceptions.ProtocolError("Connection aborted."), id="protocol"),
        pytest.param(urllib3.exceptions.ReadTimeoutError(POOL, "/api", "read timed out"), id="read-timeout"),
        pytest.param(ConnectionResetError("reset by peer"), id="reset"),
    ],
)
def test_failures_without_an_answer_are_transport_errors(exc):
    error = errors.translate(exc)
    assert isinstance(error, errors.TransportError)
    assert error.code is None


def test_our_errors_pass_through_unchanged():
    original = errors.NotFound("gone", code=404)
    assert errors.translate(original) is original


def test_watch_error_events_become_the_same_errors():
    error = errors.from_status(status(410, "Expired", "too old resource version: 5 (230)"))
    assert isinstance(error, errors.Gone)
    assert errors.needs_relist(error)


def test_resource_version_too_large_needs_a_relist():
    error = errors.from_status(
        status(
            504, "Timeout", "Too large resource version", causes=[{"reason": "ResourceVersionTooLarge", "message": "x"}]
        )
    )
    assert isinstance(error, errors.ServerError)
    assert errors.needs_relist(error)


def test_other_errors_do_not_need_a_relist():
    assert not errors.needs_relist(errors.from_status(status(500, "InternalError")))


def test_status_without_code_uses_the_http_code():
    error = errors.from_status({"kind": "Status", "reason": "NotFound", "message": "nope"}, code=404)
    assert isinstance(error, errors.NotFound)
    assert error.code == 404
