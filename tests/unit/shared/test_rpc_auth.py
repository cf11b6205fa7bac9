"""Admission of gRPC calls, with the API server's answers replaced by fixed ones (the real API server is
exercised in tests/integration/shared_auth): token parsing, caching, callers, policies, and the interceptor."""

from __future__ import annotations

import base64
import datetime
import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.shared import logging as shared_logging
from services.shared.auth import caller as caller_module
from services.shared.auth import metadata, policy, subjectaccess, tokenreview
from services.shared.auth.cache import TtlCache
from services.shared.auth.caller import Caller
from services.shared.auth.errors import ReviewUnavailable, Unauthenticated
from services.shared.auth.interceptor import AuthInterceptor
from services.shared.clock import ManualClock
from services.shared.gen.prepull.v1 import puller_pb2, puller_pb2_grpc, types_pb2
from services.shared.rpc import server as rpc_server
from services.shared.rpc import status

PULLER_SA = "system:serviceaccount:prepull-system:prepull-puller"
NODE_EXTRA = {caller_module.NODE_NAME_EXTRA: ["node-a"], caller_module.POD_NAME_EXTRA: ["prepull-puller-x"]}


@pytest.mark.parametrize(
    ("entries", "token"),
    [
        pytest.param([("authorization", "Bearer abc.def")], "abc.def", id="bearer"),
        pytest.param([("authorization", "bearer   abc ")], "abc", id="case-and-spaces"),
        pytest.param([("x-other", "1"), ("authorization", b"Bearer bytes")], "bytes", id="bytes-value"),
    ],
)
def test_bearer_token_is_read_from_metadata(entries, token):
    assert metadata.bearer_token(entries) == token


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        pytest.param(None, "missing credentials", id="no-metadata"),
        pytest.param([("x-other", "1")], "missing credentials", id="absent"),
        pytest.param([("authorization", "Basic dXNlcg==")], 'expected "Bearer"', id="basic"),
        pytest.param([("authorization", "Bearer ")], 'expected "Bearer"', id="empty"),
        pytest.param([("authorization", "Bearer a"), ("authorization", "Bearer b")], "more than one", id="two"),
    ],
)
def test_bad_authorization_metadata_is_unauthenticated(entries, message):
    with pytest.raises(Unauthenticated, match=message):
        metadata.bearer_token(entries)


def test_ttl_cache_expires_and_evicts_least_recently_used():
    clock = ManualClock()
    cache: TtlCache[str, int] = TtlCache(max_entries=2, clock=clock)
    cache.put("a", 1, ttl_seconds=10)
    cache.put("b", 2, ttl_seconds=5)
    cache.put("never", 0, ttl_seconds=0)
    assert cache.get("a") == 1  # now "b" is the least recently used
    cache.put("c", 3, ttl_seconds=10)

    assert (cache.get("b"), cache.get("never"), len(cache)) == (None, None, 2)
    clock.advance(9.9)
    assert cache.get("a") == 1
    clock.advance(0.1)
    assert cache.get("a") is None
    assert cache.get("c") is None


def test_caller_from_user_info_parses_the_pod_and_node_binding():
    caller = Caller.from_user_info(
        username=PULLER_SA,
        uid="u-1",
        groups=["system:serviceaccounts", "system:authenticated"],
        extra={**NODE_EXTRA, caller_module.POD_UID_EXTRA: ["p-1"], "other": ["a", "b"]},
        audiences=["prepull.io/credentials"],
    )

    assert (caller.node_name, caller.pod_name, caller.pod_uid) == ("node-a", "prepull-puller-x", "p-1")
    assert caller.bound_to_node
    assert caller.service_account == ("prepull-system", "prepull-puller")
    assert caller.extra["other"] == ("a", "b")
    user = Caller.from_user_info(username="alice", uid=None, groups=None, extra=None)
    assert (user.service_account, user.node_name, user.bound_to_node, user.groups) == (None, None, False, ())


def review_status(authenticated: bool, audiences=None, error=None, extra=None):
    user = {"username": PULLER_SA, "uid": "u-1", "groups": ["g"], "extra": extra}
    return {
        "authenticated": authenticated,
        "audiences": audiences,
        "error": error,
        "user": user if authenticated else None,
    }


def test_review_status_must_confirm_our_audience():
    accepted = tokenreview.caller_from_review_status(
        review_status(True, ["prepull.io/credentials"], extra=NODE_EXTRA), "prepull.io/credentials"
    )
    assert (accepted.username, accepted.node_name, accepted.audiences) == (
        PULLER_SA,
        "node-a",
        ("prepull.io/credentials",),
    )

    with pytest.raises(Unauthenticated) as rejected:
        tokenreview.caller_from_review_status(review_status(False, error="square/go-jose: bad sig"), "aud")
    assert rejected.value.detail == "square/go-jose: bad sig"
    assert "bad sig" not in str(rejected.value), "the client is not told which check failed"
    for audiences in (None, [], ["https://kubernetes.default.svc"]):
        with pytest.raises(Unauthenticated, match=r"not issued for audience 'prepull\.io/credentials'"):
            tokenreview.caller_from_review_status(review_status(True, audiences), "prepull.io/credentials")


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def test_unverified_expiry_reads_exp_only_when_readable():
    assert tokenreview.unverified_expiry(jwt({"exp": 1_700_000_000})) == datetime.datetime(
        2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC
    )
    for token in ("opaque-token", jwt({"sub": "x"}), jwt({"exp": "soon"}), "a.!!!.c", jwt({"exp": True})):
        assert tokenreview.unverified_expiry(token) is None


def test_token_digest_is_stable_and_not_the_token():
    token = jwt({"exp": 1})
    assert tokenreview.token_digest(token) == tokenreview.token_digest(token)
    assert token not in tokenreview.token_digest(token)
    assert len(tokenreview.token_digest(token)) == 64


def test_policy_lookup_prefers_the_method_rule_and_keeps_stock_services_public():
    credentials = policy.MethodPolicy(audience="prepull.io/credentials")
    jobs = policy.MethodPolicy(audience="prepull.io/jobs")
    table = policy.PolicyTable({"/prepull.v1.Jobs/GetJob": credentials, "prepull.v1.Jobs": jobs})

    assert table.rule_for("/prepull.v1.Jobs/GetJob") is credentials
    assert table.rule_for("/prepull.v1.Jobs/ListJobs") is jobs
    assert table.rule_for("/grpc.health.v1.Health/Check") is policy.PUBLIC
    assert table.rule_for("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") is policy.PUBLIC
    assert table.rule_for("/prepull.v1.Puller/ListImages") is None
    for bad in ("", "/prepull.v1.Jobs", "/a/b/c", "a/b"):
        with pytest.raises(ValueError, match="invalid policy key"):
            policy.PolicyTable({bad: jobs})


def test_resource_access_reads_like_kubectl():
    assert (
        subjectaccess.ResourceAccess("create", "imagepulljobs", "prepull.io", namespace="a").describe()
        == 'create imagepulljobs.prepull.io in namespace "a"'
    )
    assert subjectaccess.ResourceAccess("get", "nodeimages", "prepull.io", name="n1").describe() == (
        "get nodeimages.prepull.io 'n1' cluster-wide"
    )


# --- the interceptor on a real server, with fixed review answers ---------------------------------------


class FixedAuthenticator:
    """TokenReview answers from a table: token → (audience, caller); anything else is rejected."""

    def __init__(self, known: dict[str, tuple[str, Caller]], unavailable: bool = False) -> None:
        self.known, self.unavailable = known, unavailable

    def authenticate(self, token: str, audience: str) -> Caller:
        if self.unavailable:
            raise ReviewUnavailable("cannot verify the token right now; retry later", detail="connection refused")
        issued_for, caller = self.known.get(token, (None, None))
        if caller is None or issued_for != audience:
            raise Unauthenticated(f"token is invalid, expired, or not issued for audience {audience!r}")
        return caller


class FixedReviewer:
    def __init__(self, allowed: set[tuple[str, str]]) -> None:
        self.allowed_pairs = allowed

    def allowed(self, caller: Caller, access: subjectaccess.ResourceAccess) -> bool:
        return (caller.username, access.verb) in self.allowed_pairs


class CallerEcho(puller_pb2_grpc.PullerServicer):
    """Answers with the current caller's node in the response, for unary and streaming calls."""

    def ListImages(self, request, context):
        return puller_pb2.ListImagesResponse(images=[_image(caller_module.current_caller())])

    def PullImage(self, request, context):
        yield puller_pb2.PullProgress(message=caller_module.current_caller().username)
        yield puller_pb2.PullProgress(message=caller_module.current_caller().node_name or "")

    def ImageStatus(self, request, context):
        raise NotImplementedError


def _image(caller: Caller):
    return types_pb2.Image(digest=caller.node_name or "", repo_tags=[caller.username])


PULLER = Caller.from_user_info(username=PULLER_SA, extra=NODE_EXTRA)
ALICE = Caller.from_user_info(username="alice")


@pytest.fixture
def make_stub():
    servers = []

    def make(rules: dict[str, policy.Rule], *, unavailable: bool = False, allowed=frozenset()):
        authenticator = FixedAuthenticator(
            {"puller-token": ("prepull.io/inventory", PULLER), "alice-token": ("prepull.io/inventory", ALICE)},
            unavailable=unavailable,
        )
        interceptor = AuthInterceptor(
            policy.PolicyTable(rules), authenticator=authenticator, reviewer=FixedReviewer(set(allowed))
        )
        server, port = rpc_server.create_server(
            "127.0.0.1:0",
            [(puller_pb2_grpc.add_PullerServicer_to_server, CallerEcho())],
            interceptors=[interceptor, status.StatusInterceptor()],
        )
        server.start()
        servers.append(server)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        return puller_pb2_grpc.PullerStub(channel), channel

    yield make
    for server in servers:
        server.stop(0).wait()


def list_images(stub, token: str | None):
    auth = [metadata.authorization_entry(token)] if token else []
    return stub.ListImages(puller_pb2.ListImagesRequest(), metadata=auth, timeout=10)


def refused(stub, token: str | None) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        list_images(stub, token)
    return raised.value.code(), raised.value.details()


INVENTORY = policy.MethodPolicy(audience="prepull.io/inventory")


def test_admitted_calls_see_their_caller(make_stub):
    stub, _ = make_stub({"prepull.v1.Puller": INVENTORY})

    [image] = list_images(stub, "puller-token").images
    streamed = stub.PullImage(
        puller_pb2.PullImageRequest(), metadata=[metadata.authorization_entry("puller-token")], timeout=10
    )

    assert (image.digest, list(image.repo_tags)) == ("node-a", [PULLER_SA])
    assert [progress.message for progress in streamed] == [PULLER_SA, "node-a"]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        pytest.param(None, metadata.MISSING, id="missing"),
        pytest.param("forged-token", "not issued for audience 'prepull.io/inventory'", id="unknown"),
    ],
)
def test_unknown_callers_are_unauthenticated(make_stub, token, message):
    stub, _ = make_stub({"prepull.v1.Puller": INVENTORY})

    code, details = refused(stub, token)

    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert message in details


def test_a_token_for_another_audience_is_unauthenticated(make_stub):
    stub, _ = make_stub({"prepull.v1.Puller": policy.MethodPolicy(audience="prepull.io/credentials")})

    assert refused(stub, "puller-token")[0] == grpc.StatusCode.UNAUTHENTICATED


def test_identity_rules_deny_other_callers(make_stub):
    rule = policy.MethodPolicy(
        audience="prepull.io/inventory", usernames=frozenset({PULLER_SA}), require_node_binding=True
    )
    stub, _ = make_stub({"prepull.v1.Puller": rule})

    assert list_images(stub, "puller-token").images[0].digest == "node-a"
    assert refused(stub, "alice-token") == (grpc.StatusCode.PERMISSION_DENIED, "alice may not call this method")

    unbound = policy.MethodPolicy(audience="prepull.io/inventory", require_node_binding=True)
    stub, _ = make_stub({"prepull.v1.Puller": unbound})
    assert refused(stub, "alice-token")[0] == grpc.StatusCode.PERMISSION_DENIED


def test_access_rules_ask_the_reviewer(make_stub):
    rule = policy.MethodPolicy(
        audience="prepull.io/inventory", access=subjectaccess.ResourceAccess("get", "nodeimages", "prepull.io")
    )
    stub, _ = make_stub({"prepull.v1.Puller": rule}, allowed={("alice", "get")})

    assert list_images(stub, "alice-token").images[0].repo_tags == ["alice"]
    code, details = refused(stub, "puller-token")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details == f"{PULLER_SA} may not get nodeimages.prepull.io cluster-wide"


def test_methods_without_a_rule_fail_closed_but_health_stays_open(make_stub, caplog):
    stub, channel = make_stub({"/prepull.v1.Puller/PullImage": INVENTORY})

    for _ in range(3):
        assert refused(stub, "puller-token") == (
            grpc.StatusCode.PERMISSION_DENIED,
            "method /prepull.v1.Puller/ListImages is not open to callers",
        )
    warnings = [r.getMessage() for r in caplog.records if "no access policy" in r.getMessage()]
    assert warnings == [
        "no access policy for /prepull.v1.Puller/ListImages; refusing every call to it (add a rule for it)"
    ], "a configuration bug is told once, not once per call"
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_an_unreachable_api_server_is_unavailable_so_clients_retry(make_stub):
    stub, _ = make_stub({"prepull.v1.Puller": INVENTORY}, unavailable=True)

    code, details = refused(stub, "puller-token")

    assert code == grpc.StatusCode.UNAVAILABLE
    assert "connection refused" not in details


def test_refusal_messages_survive_redaction():
    messages = [metadata.MISSING, metadata.MALFORMED, "more than one 'authorization' metadata entry"]
    messages.append(str(Unauthenticated("token is invalid, expired, or not issued for audience 'prepull.io/x'")))
    for message in messages:
        assert shared_logging.redact_text(message) == message


def test_a_policy_naming_an_action_needs_a_reviewer():
    rules = policy.PolicyTable(
        {"prepull.v1.Jobs": policy.MethodPolicy(audience="a", access=subjectaccess.ResourceAccess("get", "pods"))}
    )
    with pytest.raises(ValueError, match="SubjectAccessReview reviewer is needed"):
        AuthInterceptor(rules, authenticator=FixedAuthenticator({}))
    assert not policy.PolicyTable({"prepull.v1.Jobs": INVENTORY, "prepull.v1.X": policy.PUBLIC}).needs_access_review


def test_no_caller_outside_a_call():
    with pytest.raises(LookupError, match="no authenticated caller"):
        caller_module.current_caller()
    with caller_module.bound(ALICE):
        assert caller_module.current_caller() is ALICE
    with pytest.raises(LookupError):
        caller_module.current_caller()
