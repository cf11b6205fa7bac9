"""Who is calling our gRPC services, and may they? Kubernetes answers both.

Callers present a Kubernetes bearer token (a Pod's projected ServiceAccount token, or a user's token). The
server asks the API server: TokenReview (`tokenreview`) says who the token belongs to, for which audience, and
for a Pod-bound token on which node; SubjectAccessReview (`subjectaccess`) says whether RBAC lets that caller
do the Kubernetes-equivalent action. `interceptor` applies both per gRPC method, as design §2 "Who may call
what" lays out, and makes the `caller.Caller` available to the servicer; `refusal_log` rate-limits its log
lines of refused calls. On the client side, `token_source` reads the kubelet-rotated token file and attaches
it to calls.

Tokens are never logged, cached in clear, or echoed in errors.
"""

__all__ = [
    "cache",
    "caller",
    "errors",
    "interceptor",
    "metadata",
    "policy",
    "refusal_log",
    "subjectaccess",
    "token_source",
    "tokenreview",
]
