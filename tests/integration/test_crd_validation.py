"""The prepull.io/v1beta1 CRDs on a real kube-apiserver: defaults, admission rules and their messages, compatibility.

Every rule in deploy/crd/ is tried with an object that breaks it, and the apiserver's answer must carry the rule's
message (tables below; `test_every_rule_has_a_rejection_case` keeps the tables complete). OpenKruise manifests with
only `apiVersion` changed must be accepted, the seed's `kubectl patch nodeimage` must work as written, and
`kubectl get` must show the printer columns.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from tests.support.deploy_manifests import Kubectl, apply_deploy, crd_schema, load_crd

API_VERSION = "prepull.io/v1beta1"
KRUISE_API_VERSION = "apps.kruise.io/v1beta1"
DIGEST = "sha256:" + "0123456789abcdef" * 4
SEED_PATCH = '{"spec":{"images":{"ubuntu":{"tags":[{"tag":"latest","pullPolicy":{"ttlSecondsAfterFinished":300}}]}}}}'
KIND_PLURALS = {"ImagePullJob": "imagepulljobs", "ImageListPullJob": "imagelistpulljobs", "NodeImage": "nodeimages"}
TTL = {"ttlSecondsAfterFinished": 300}


def image_pull_job(**spec: Any) -> dict[str, Any]:
    """An ImagePullJob named "bad" whose spec is a valid minimal one overridden by `spec`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ImagePullJob",
        "metadata": {"name": "bad"},
        "spec": {"image": "nginx:1.25"} | spec,
    }


def image_list_pull_job(**spec: Any) -> dict[str, Any]:
    """An ImageListPullJob named "bad" whose spec is a valid minimal one overridden by `spec`."""
    base = {"images": ["nginx:1.25", "busybox:1.36"]}
    return {"apiVersion": API_VERSION, "kind": "ImageListPullJob", "metadata": {"name": "bad"}, "spec": base | spec}


def node_image(images: dict[str, Any]) -> dict[str, Any]:
    """A NodeImage named "bad-node" with `images` as its spec."""
    return {
        "apiVersion": API_VERSION,
        "kind": "NodeImage",
        "metadata": {"name": "bad-node"},
        "spec": {"images": images},
    }


def tags(*entries: dict[str, Any]) -> dict[str, Any]:
    """An ImageSpec with these tag entries."""
    return {"tags": list(entries)}


@dataclass(frozen=True)
class Rejection:
    """An object the apiserver must refuse, and a substring its error message must contain."""

    id: str
    manifest: dict[str, Any] = field(repr=False)
    message: str


# Rules of the job template, shared by ImagePullJob and ImageListPullJob: (id, spec fragment, message).
TEMPLATE_RULES: list[tuple[str, dict[str, Any], str]] = [
    (
        "names-and-labels",
        {"selector": {"names": ["node-a"], "matchLabels": {"zone": "a"}}},
        "can not set both names and labelSelector in this spec.selector",
    ),
    (
        "names-and-expressions",
        {"selector": {"names": ["node-a"], "matchExpressions": [{"key": "zone", "operator": "Exists"}]}},
        "can not set both names and labelSelector in this spec.selector",
    ),
    ("duplicate-names", {"selector": {"names": ["node-a", "node-a"]}}, 'Duplicate value: "node-a"'),
    (
        "selector-and-podselector",
        {"selector": {"names": ["node-a"]}, "podSelector": {"matchLabels": {"app": "web"}}},
        "can not set both selector and podSelector",
    ),
    ("percent", {"parallelism": "50%"}, "parallelism does not support percentage value"),
    ("not-an-integer", {"parallelism": "ten"}, 'parallelism must be a valid integer: "ten" is not a whole number'),
    ("negative-int", {"parallelism": -1}, "parallelism must be non-negative"),
    ("negative-string", {"parallelism": "-2"}, "parallelism must be non-negative"),
    ("too-large", {"parallelism": 2147483648}, "parallelism must be at most 2147483647"),
    ("unknown-type", {"completionPolicy": {"type": "Sometimes"}}, "unknown type of completionPolicy: Sometimes"),
    (
        "never-with-deadline",
        {"completionPolicy": {"type": "Never", "activeDeadlineSeconds": 3600}},
        "activeDeadlineSeconds and ttlSecondsAfterFinished can only work with Always CompletionPolicyType",
    ),
    (
        "never-with-ttl",
        {"completionPolicy": {"type": "Never", "ttlSecondsAfterFinished": 60}},
        "activeDeadlineSeconds and ttlSecondsAfterFinished can only work with Always CompletionPolicyType",
    ),
    ("image-pull-policy", {"imagePullPolicy": "Never"}, 'Unsupported value: "Never"'),
    ("duplicate-secrets", {"pullSecrets": ["reg", "reg"]}, 'Duplicate value: "reg"'),
    ("too-many-secrets", {"pullSecrets": [f"s{i}" for i in range(33)]}, "must have at most 32 items"),
]

for selector, prefix in (("selector", "invalid selector"), ("podSelector", "invalid podSelector")):
    TEMPLATE_RULES += [
        (
            f"{selector}-operator",
            {selector: {"matchExpressions": [{"key": "zone", "operator": "Near"}]}},
            f'{prefix}: "Near" is not a valid label selector operator',
        ),
        (
            f"{selector}-in-without-values",
            {selector: {"matchExpressions": [{"key": "zone", "operator": "In"}]}},
            f"{prefix}: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            f"{selector}-exists-with-values",
            {selector: {"matchExpressions": [{"key": "zone", "operator": "Exists", "values": ["a"]}]}},
            f"{prefix}: values set must be empty for exists and does not exist",
        ),
        (
            f"{selector}-bad-key",
            {selector: {"matchExpressions": [{"key": "-zone", "operator": "Exists"}]}},
            f'{prefix}: "-zone" is not a valid label key',
        ),
        (
            f"{selector}-bad-value",
            {selector: {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a b"]}]}},
            f'{prefix}: "a b" is not a valid label value',
        ),
        (
            f"{selector}-bad-label-key",
            {selector: {"matchLabels": {"bad key": "a"}}},
            f"{prefix}: matchLabels has a key that is not a valid label key",
        ),
        (
            f"{selector}-bad-label-value",
            {selector: {"matchLabels": {"zone": "a b"}}},
            f"{prefix}: matchLabels has a value that is not a valid label value",
        ),
    ]

IMAGE_PULL_JOB_RULES = [
    Rejection("ipj-image-missing", {**image_pull_job(), "spec": {"parallelism": 1}}, "spec.image: Required value"),
    Rejection("ipj-image-empty", image_pull_job(image=""), "image can not be empty"),
    Rejection(
        "ipj-image-uppercase", image_pull_job(image="Nginx:1.25"), "invalid image Nginx:1.25: invalid reference format"
    ),
    Rejection("ipj-image-empty-tag", image_pull_job(image="nginx:"), "invalid image nginx:: invalid reference format"),
    Rejection("ipj-image-short-digest", image_pull_job(image="nginx@sha256:abc"), "invalid image nginx@sha256:abc"),
    Rejection("ipj-image-hex-id", image_pull_job(image="ab" * 32), "invalid image " + "ab" * 32),
    Rejection("ipj-image-scheme", image_pull_job(image="https://registry/app"), "invalid image https://registry/app"),
    Rejection("ipj-image-too-long", image_pull_job(image="a" * 513), "Too long: may not be more than 512 bytes"),
    Rejection(
        "ipj-deadline-below-default-timeout",
        image_pull_job(completionPolicy={"activeDeadlineSeconds": 599}),
        "completionPolicy.activeDeadlineSeconds must be greater than pullPolicy.timeoutSeconds(default 600)",
    ),
    Rejection(
        "ipj-deadline-below-timeout",
        image_pull_job(
            completionPolicy={"type": "Always", "activeDeadlineSeconds": 100}, pullPolicy={"timeoutSeconds": 101}
        ),
        "completionPolicy.activeDeadlineSeconds must be greater than pullPolicy.timeoutSeconds(default 600)",
    ),
    Rejection("ipj-no-spec", {k: v for k, v in image_pull_job().items() if k != "spec"}, "spec: Required value"),
    *(Rejection(f"ipj-{name}", image_pull_job(**spec), message) for name, spec, message in TEMPLATE_RULES),
]

IMAGE_LIST_PULL_JOB_RULES = [
    Rejection(
        "ilpj-images-missing", {**image_list_pull_job(), "spec": {"parallelism": 1}}, "spec.images: Required value"
    ),
    Rejection("ilpj-images-empty", image_list_pull_job(images=[]), "image can not be empty"),
    Rejection("ilpj-images-duplicate", image_list_pull_job(images=["nginx", "nginx"]), 'Duplicate value: "nginx"'),
    Rejection(
        "ilpj-images-too-many",
        image_list_pull_job(images=[f"app:{i}" for i in range(256)]),
        "must have at most 255 items",
    ),
    Rejection(
        "ilpj-image-invalid",
        image_list_pull_job(images=["nginx:1.25", "Busybox"]),
        "invalid image Busybox: invalid reference format",
    ),
    *(Rejection(f"ilpj-{name}", image_list_pull_job(**spec), message) for name, spec, message in TEMPLATE_RULES),
]

NODE_IMAGE_RULES = [
    Rejection(
        "ni-too-many-images",
        node_image({f"app{i}": tags({"tag": "v1", "pullPolicy": TTL}) for i in range(257)}),
        "must have at most 256 items",
    ),
    Rejection(
        "ni-empty-image-name", node_image({"": tags({"tag": "v1", "pullPolicy": TTL})}), "image name can not be empty"
    ),
    Rejection(
        "ni-empty-tag",
        node_image({"ubuntu": tags({"tag": "", "pullPolicy": TTL})}),
        "tag for image ubuntu can not be empty",
    ),
    Rejection(
        "ni-duplicate-tag",
        node_image({"ubuntu": tags({"tag": "latest", "pullPolicy": TTL}, {"tag": "latest", "pullPolicy": TTL})}),
        'Duplicate value: {"tag":"latest"}',
    ),
    Rejection(
        "ni-negative-version",
        node_image({"ubuntu": tags({"tag": "latest", "version": -1, "pullPolicy": TTL})}),
        "version for ubuntu/latest can not be less than 0",
    ),
    Rejection(
        "ni-no-ttl",
        node_image({"ubuntu": tags({"tag": "20.04", "pullPolicy": TTL}, {"tag": "latest"})}),
        "pullPolicy.ttlSecondsAfterFinished for ubuntu/latest must set",
    ),
    Rejection(
        "ni-ttl-missing-in-policy",
        node_image({"nginx": tags({"tag": "1.25", "pullPolicy": {"timeoutSeconds": 60}})}),
        "pullPolicy.ttlSecondsAfterFinished for nginx/1.25 must set",
    ),
    Rejection("ni-tags-missing", node_image({"ubuntu": {}}), "tags: Required value"),
    Rejection(
        "ni-bad-tag",
        node_image({"ubuntu": tags({"tag": "lat est", "pullPolicy": TTL})}),
        "tags[0].tag in body should match",
    ),
    Rejection(
        "ni-bad-pull-policy",
        node_image({"ubuntu": tags({"tag": "latest", "pullPolicy": TTL, "imagePullPolicy": "Never"})}),
        'Unsupported value: "Never"',
    ),
    Rejection(
        "ni-bad-traceparent",
        node_image(
            {"ubuntu": tags({"tag": "latest", "pullPolicy": TTL, "traceContexts": [{"uid": "u1", "traceparent": "x"}]})}
        ),
        "traceparent in body should match",
    ),
    Rejection(
        "ni-too-many-tags",
        node_image({"ubuntu": tags(*({"tag": f"v{i}", "pullPolicy": TTL} for i in range(129)))}),
        "must have at most 128 items",
    ),
]

REJECTIONS = [*IMAGE_PULL_JOB_RULES, *IMAGE_LIST_PULL_JOB_RULES, *NODE_IMAGE_RULES]
PULL_SECRETS_IMMUTABLE = "spec.pullSecrets is immutable"

# Status written through the /status subresource by our services: (id, NodeImage status, message).
NODE_IMAGE_STATUS_RULES = [
    (
        "phase",
        {"desired": 1, "imageStatuses": {"ubuntu": {"tags": [{"tag": "latest", "phase": "Done"}]}}},
        'Unsupported value: "Done"',
    ),
    (
        "progress",
        {"desired": 1, "imageStatuses": {"ubuntu": {"tags": [{"tag": "latest", "phase": "Pulling", "progress": 101}]}}},
        "should be less than or equal to 100",
    ),
    ("desired-missing", {"succeeded": 1}, "status.desired: Required value"),
]


# --- fixtures and helpers ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(control_plane: Kubectl) -> Kubectl:
    """The session's control plane with deploy/ applied."""
    apply_deploy(control_plane)
    return control_plane


@pytest.fixture(scope="module")
def namespace(installed: Kubectl) -> Iterator[str]:
    """One namespace for this module's namespaced objects, deleted at the end."""
    name = f"crd-{uuid.uuid4().hex[:8]}"
    installed.kubectl("create", "namespace", name)
    yield name
    installed.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def jobs_removed_after(installed: Kubectl, namespace: str) -> Iterator[None]:
    """Delete the test's jobs right after it, so a scheduler running in the same session never acts on them."""
    yield
    installed.kubectl("delete", "imagepulljobs,imagelistpulljobs", "--all", "-n", namespace, "--wait=false")


@pytest.fixture
def node_image_name(installed: Kubectl) -> Iterator[str]:
    """A unique NodeImage name; the NodeImage (if the test made one) is deleted afterwards."""
    name = f"crd-node-{uuid.uuid4().hex[:8]}"
    yield name
    installed.kubectl("delete", "nodeimage", name, "--ignore-not-found")


def create(cluster: Kubectl, namespace: str, manifest: dict[str, Any], *, dry_run: bool = False) -> tuple[bool, str]:
    """`kubectl create` the manifest; (accepted, combined output)."""
    args = ["create", "-n", namespace, "-f", "-"] + (["--dry-run=server"] if dry_run else [])
    result = cluster.kubectl(*args, input=json.dumps(manifest), check=False)
    return result.returncode == 0, result.stdout + result.stderr


def get(cluster: Kubectl, namespace: str, kind: str, name: str) -> dict[str, Any]:
    """The stored object, as the apiserver returns it (defaults applied)."""
    obj: dict[str, Any] = json.loads(cluster.kubectl("get", "-n", namespace, kind, name, "-o", "json").stdout)
    return obj


def merge_patch(
    cluster: Kubectl, namespace: str, kind: str, name: str, patch: str, *, status: bool = False
) -> tuple[bool, str]:
    """`kubectl patch --type=merge`; (accepted, combined output)."""
    args = ["patch", "-n", namespace, kind, name, "--type=merge", "-p", patch]
    result = cluster.kubectl(*args, *(["--subresource=status"] if status else []), check=False)
    return result.returncode == 0, result.stdout + result.stderr


def named(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    """A copy of `manifest` with metadata.name set."""
    renamed = copy.deepcopy(manifest)
    renamed["metadata"]["name"] = name
    return renamed


# --- every rule rejects, with its message ------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("case", REJECTIONS, ids=lambda case: case.id)
def test_invalid_object_is_rejected_with_its_message(installed: Kubectl, namespace: str, case: Rejection) -> None:
    accepted, output = create(installed, namespace, case.manifest, dry_run=True)
    assert not accepted, f"accepted: {output}"
    assert case.message in output


@pytest.mark.integration
@pytest.mark.parametrize(
    ("case_id", "status", "message"), NODE_IMAGE_STATUS_RULES, ids=[c[0] for c in NODE_IMAGE_STATUS_RULES]
)
def test_invalid_node_image_status_is_rejected(
    installed: Kubectl, node_image_name: str, case_id: str, status: dict[str, Any], message: str
) -> None:
    installed.kubectl("create", "-f", "-", input=json.dumps(named(node_image({}), node_image_name)))
    accepted, output = merge_patch(
        installed, "default", "nodeimage", node_image_name, json.dumps({"status": status}), status=True
    )
    assert not accepted, f"accepted: {output}"
    assert message in output


def _rule_markers(schema: Any) -> Iterator[list[str]]:
    """For every CEL rule in a schema, the literal text pieces its message must show."""
    if isinstance(schema, dict):
        for rule in schema.get("x-kubernetes-validations", []):
            if "message" in rule:
                yield [rule["message"]]
            else:
                literal = re.search(r"'([^']*)'", rule["messageExpression"])
                assert literal, rule
                yield [piece for piece in literal.group(1).split("%s") if piece.strip()]
        for value in schema.values():
            yield from _rule_markers(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _rule_markers(value)


@pytest.mark.parametrize("kind", KIND_PLURALS)
def test_every_rule_has_a_rejection_case(kind: str) -> None:
    expected = [case.message for case in REJECTIONS if case.manifest["kind"] == kind]
    if kind == "ImagePullJob":
        expected.append(PULL_SECRETS_IMMUTABLE)
    uncovered = [
        markers
        for markers in _rule_markers(crd_schema(KIND_PLURALS[kind]))
        if not any(all(piece in message for piece in markers) for message in expected)
    ]
    assert uncovered == []


# --- defaults ----------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("jobs_removed_after")
@pytest.mark.integration
def test_minimal_image_pull_job_gets_upstream_defaults(installed: Kubectl, namespace: str) -> None:
    accepted, output = create(installed, namespace, named(image_pull_job(), "minimal"))
    assert accepted, output
    spec = get(installed, namespace, "imagepulljob", "minimal")["spec"]
    assert spec == {
        "image": "nginx:1.25",
        "completionPolicy": {"type": "Always"},
        "pullPolicy": {"timeoutSeconds": 600, "backoffLimit": 3},
        "imagePullPolicy": "IfNotPresent",
    }


@pytest.mark.usefixtures("jobs_removed_after")
@pytest.mark.integration
def test_partial_pull_policy_is_completed(installed: Kubectl, namespace: str) -> None:
    manifest = image_pull_job(pullPolicy={"timeoutSeconds": 30}, completionPolicy={"ttlSecondsAfterFinished": 60})
    accepted, output = create(installed, namespace, named(manifest, "partial"))
    assert accepted, output
    spec = get(installed, namespace, "imagepulljob", "partial")["spec"]
    assert spec["pullPolicy"] == {"timeoutSeconds": 30, "backoffLimit": 3}
    assert spec["completionPolicy"] == {"type": "Always", "ttlSecondsAfterFinished": 60}
    assert "parallelism" not in spec


@pytest.mark.usefixtures("jobs_removed_after")
@pytest.mark.integration
def test_minimal_image_list_pull_job_gets_defaults(installed: Kubectl, namespace: str) -> None:
    accepted, output = create(installed, namespace, named(image_list_pull_job(), "minimal-list"))
    assert accepted, output
    spec = get(installed, namespace, "imagelistpulljob", "minimal-list")["spec"]
    assert spec == {
        "images": ["nginx:1.25", "busybox:1.36"],
        "completionPolicy": {"type": "Always"},
        "pullPolicy": {"timeoutSeconds": 600, "backoffLimit": 3},
        "imagePullPolicy": "IfNotPresent",
    }


@pytest.mark.integration
def test_node_image_tag_gets_pull_policy_defaults_and_no_created_at(installed: Kubectl, node_image_name: str) -> None:
    manifest = named(node_image({"nginx": tags({"tag": "1.25", "pullPolicy": TTL})}), node_image_name)
    installed.kubectl("create", "-f", "-", input=json.dumps(manifest))
    (tag,) = get(installed, "default", "nodeimage", node_image_name)["spec"]["images"]["nginx"]["tags"]
    assert tag == {
        "tag": "1.25",
        "pullPolicy": {"ttlSecondsAfterFinished": 300, "timeoutSeconds": 600, "backoffLimit": 3},
    }


# --- accepted objects --------------------------------------------------------------------------------------------

# OpenKruise manifests (openkruise.io user manual and upstream behaviour), written for apps.kruise.io/v1beta1.
KRUISE_EXAMPLES = {
    "docs-job-with-always": """
apiVersion: apps.kruise.io/v1beta1
kind: ImagePullJob
metadata:
  name: job-with-always
spec:
  image: nginx:1.9.1
  parallelism: 10
  selector:
    names:
    - node-1
    - node-2
  completionPolicy:
    type: Always
    activeDeadlineSeconds: 1200
    ttlSecondsAfterFinished: 300
  pullPolicy:
    backoffLimit: 3
    timeoutSeconds: 300
""",
    "docs-label-selector-and-secrets": """
apiVersion: apps.kruise.io/v1beta1
kind: ImagePullJob
metadata:
  name: job-with-labels
spec:
  image: registry.example.com:5000/team/app:v2
  selector:
    matchLabels:
      node-type: xxx
  pullSecrets:
  - secret-name1
  - secret-name2
  completionPolicy:
    type: Always
""",
    "docs-pod-selector": """
apiVersion: apps.kruise.io/v1beta1
kind: ImagePullJob
metadata:
  name: job-with-pods
spec:
  image: nginx:1.9.1
  podSelector:
    matchLabels:
      pod-label: xxx
    matchExpressions:
    - key: pod-label
      operator: In
      values:
      - xxx
  completionPolicy:
    type: Never
""",
    "docs-sandbox-config-always": """
apiVersion: apps.kruise.io/v1beta1
kind: ImagePullJob
metadata:
  name: job-with-sandbox
spec:
  image: nginx:1.9.1
  imagePullPolicy: Always
  sandboxConfig:
    annotations:
      io.kubernetes.image.metrics.tags: "cluster=cn-shanghai"
    labels:
      io.kubernetes.image.app: "foo"
  completionPolicy: {}
""",
    "workload-created-job": """
apiVersion: apps.kruise.io/v1beta1
kind: ImagePullJob
metadata:
  name: web-7d9f8-main
spec:
  image: docker.io/library/nginx:1.25@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  parallelism: "1"
  podSelector:
    matchLabels:
      app: web
    matchExpressions:
    - key: controller-revision-hash
      operator: NotIn
      values: [web-7d9f8]
  pullPolicy:
    timeoutSeconds: 300
    backoffLimit: 1
  completionPolicy:
    type: Always
    ttlSecondsAfterFinished: 600
""",
    "docs-image-list-pull-job": """
apiVersion: apps.kruise.io/v1beta1
kind: ImageListPullJob
metadata:
  name: list-with-always
spec:
  images:
  - nginx:1.9.1
  - busybox:1.29.2
  parallelism: 10
  selector:
    names:
    - node-1
    - node-2
  completionPolicy:
    type: Always
    activeDeadlineSeconds: 1200
    ttlSecondsAfterFinished: 300
  pullPolicy:
    backoffLimit: 3
    timeoutSeconds: 300
""",
    "list-job-deadline-below-timeout": """
apiVersion: apps.kruise.io/v1beta1
kind: ImageListPullJob
metadata:
  name: list-short-deadline
spec:
  images: [nginx:1.9.1]
  completionPolicy:
    type: Always
    activeDeadlineSeconds: 60
""",
    "docs-node-image-edit": """
apiVersion: apps.kruise.io/v1beta1
kind: NodeImage
metadata:
  name: NODE
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
spec:
  images:
    ubuntu:
      tags:
      - tag: latest
        pullPolicy:
          ttlSecondsAfterFinished: 300
          timeoutSeconds: 600
          backoffLimit: 3
          activeDeadlineSeconds: 1200
""",
    "controller-written-node-image": """
apiVersion: apps.kruise.io/v1beta1
kind: NodeImage
metadata:
  name: NODE
spec:
  images:
    nginx:
      pullSecrets:
      - {namespace: kruise-daemon-config, name: reg-1a2b3c, mode: batch}
      sandboxConfig:
        labels: {io.kubernetes.image.app: foo}
      tags:
      - tag: "1.25"
        createdAt: "2024-08-09T10:03:52Z"
        version: 2
        imagePullPolicy: IfNotPresent
        pullPolicy: {timeoutSeconds: 600, backoffLimit: 3, ttlSecondsAfterFinished: 2100, activeDeadlineSeconds: 1200}
        ownerReferences:
        - apiVersion: apps.kruise.io/v1beta1
          kind: ImagePullJob
          name: j
          namespace: default
          uid: 0b4e5c1e-1111-2222-3333-444455556666
      - tag: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
        pullPolicy: {ttlSecondsAfterFinished: 86400}
""",
}


def kruise_manifest(example: str, name_suffix: str) -> dict[str, Any]:
    """An OpenKruise example with only apiVersion changed (and NodeImage names made unique for the test)."""
    manifest: dict[str, Any] = yaml.safe_load(example)
    assert manifest["apiVersion"] == KRUISE_API_VERSION
    manifest["apiVersion"] = API_VERSION
    if manifest["kind"] == "NodeImage":
        manifest["metadata"]["name"] = name_suffix
    return manifest


@pytest.mark.usefixtures("jobs_removed_after")
@pytest.mark.integration
@pytest.mark.parametrize("example", KRUISE_EXAMPLES, ids=str)
def test_openkruise_manifest_is_accepted_with_only_api_version_changed(
    installed: Kubectl, namespace: str, node_image_name: str, example: str
) -> None:
    manifest = kruise_manifest(KRUISE_EXAMPLES[example], node_image_name)
    accepted, output = create(installed, namespace, manifest)
    assert accepted, output


@pytest.mark.integration
def test_upstream_docs_example_with_names_and_labels_is_refused_as_upstream_does(
    installed: Kubectl, namespace: str
) -> None:
    manifest = kruise_manifest(KRUISE_EXAMPLES["docs-job-with-always"], "")
    manifest["spec"]["selector"]["matchLabels"] = {"node-type": "xxx"}
    accepted, output = create(installed, namespace, manifest, dry_run=True)
    assert not accepted
    assert "can not set both names and labelSelector in this spec.selector" in output


@pytest.mark.integration
def test_openkruise_status_is_accepted(installed: Kubectl, namespace: str, node_image_name: str) -> None:
    installed.kubectl("create", "-f", "-", input=json.dumps(named(node_image({}), node_image_name)))
    failed_pull = 'Failed to pull image reference "nginx:1.9.1": rpc error: code = DeadlineExceeded ' + "x" * 300
    status = {
        "desired": 1,
        "failed": 1,
        "pulling": 0,
        "succeeded": 0,
        "imageStatuses": {
            "nginx": {
                "tags": [
                    {
                        "tag": "1.9.1",
                        "phase": "Failed",
                        "message": failed_pull,
                        "startTime": "2024-08-09T10:03:52Z",
                        "completionTime": "2024-08-09T10:06:22Z",
                        "version": 1,
                        "imageID": "nginx@sha256:" + "ab" * 32,
                    }
                ]
            }
        },
        "firstSyncStatus": {"syncAt": None, "status": "Succeeded"},
    }
    accepted, output = merge_patch(
        installed, "default", "nodeimage", node_image_name, json.dumps({"status": status}), status=True
    )
    assert accepted, output
    assert (
        get(installed, "default", "nodeimage", node_image_name)["status"]["imageStatuses"]["nginx"]["tags"][0][
            "message"
        ]
        == failed_pull
    )


@pytest.mark.integration
def test_seed_patch_command_is_accepted_as_written(installed: Kubectl, node_image_name: str) -> None:
    installed.kubectl("create", "-f", "-", input=json.dumps(named(node_image({}), node_image_name) | {"spec": {}}))
    installed.kubectl("patch", "nodeimage", node_image_name, "--type=merge", "-p", SEED_PATCH)
    images = get(installed, "default", "nodeimage", node_image_name)["spec"]["images"]
    assert images == {
        "ubuntu": {
            "tags": [
                {
                    "tag": "latest",
                    "pullPolicy": {"ttlSecondsAfterFinished": 300, "timeoutSeconds": 600, "backoffLimit": 3},
                }
            ]
        }
    }


@pytest.mark.usefixtures("jobs_removed_after")
@pytest.mark.integration
def test_prepull_additions_are_accepted(installed: Kubectl, namespace: str, node_image_name: str) -> None:
    traceparent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    tag = {"tag": "1.25", "pullPolicy": TTL, "traceContexts": [{"uid": "u-1", "traceparent": traceparent}]}
    installed.kubectl("create", "-f", "-", input=json.dumps(named(node_image({"nginx": tags(tag)}), node_image_name)))
    status = {
        "desired": 1,
        "pulling": 1,
        "observedGeneration": 1,
        "imageStatuses": {
            "nginx": {
                "tags": [{"tag": "1.25", "phase": "Pulling", "progress": 40, "pulledBytes": 400, "totalBytes": 1000}]
            }
        },
    }
    accepted, output = merge_patch(
        installed, "default", "nodeimage", node_image_name, json.dumps({"status": status}), status=True
    )
    assert accepted, output

    accepted, output = create(installed, namespace, named(image_pull_job(), "with-conditions"))
    assert accepted, output
    job_status = {
        "desired": 2,
        "failed": 1,
        "failedNodes": ["node-b"],
        "observedGeneration": 1,
        "nodeFailures": [
            {"node": "node-b", "reason": "DeadlineExceeded", "message": "job exceeds activeDeadlineSeconds"}
        ],
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "DeadlineExceeded",
                "message": "1 node failed",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
    accepted, output = merge_patch(
        installed, namespace, "imagepulljob", "with-conditions", json.dumps({"status": job_status}), status=True
    )
    assert accepted, output


# --- pullSecrets immutability --------------------------------------------------------------------------------------

SECRET_EDITS = [
    ("change", ["reg-a"], '{"spec":{"pullSecrets":["reg-b"]}}'),
    ("add-one", ["reg-a"], '{"spec":{"pullSecrets":["reg-a","reg-b"]}}'),
    ("remove-field", ["reg-a"], '{"spec":{"pullSecrets":null}}'),
    ("empty-the-list", ["reg-a"], '{"spec":{"pullSecrets":[]}}'),
    ("add-field", None, '{"spec":{"pullSecrets":["reg-a"]}}'),
    ("add-empty-field", None, '{"spec":{"pullSecrets":[]}}'),
]


@pytest.mark.usefixtures("jobs_removed_after")
@pytest.mark.integration
@pytest.mark.parametrize(("edit", "initial", "patch"), SECRET_EDITS, ids=[edit[0] for edit in SECRET_EDITS])
def test_image_pull_job_pull_secrets_are_immutable(
    installed: Kubectl, namespace: str, edit: str, initial: list[str] | None, patch: str
) -> None:
    name = f"secrets-{edit}"
    manifest = named(image_pull_job() if initial is None else image_pull_job(pullSecrets=initial), name)
    accepted, output = create(installed, namespace, manifest)
    assert accepted, output
    accepted, output = merge_patch(installed, namespace, "imagepulljob", name, patch)
    assert not accepted, f"accepted: {output}"
    assert PULL_SECRETS_IMMUTABLE in output


@pytest.mark.usefixtures("jobs_removed_after")
@pytest.mark.integration
def test_other_image_pull_job_edits_and_reordered_secrets_are_allowed(installed: Kubectl, namespace: str) -> None:
    accepted, output = create(installed, namespace, named(image_pull_job(pullSecrets=["reg-a", "reg-b"]), "editable"))
    assert accepted, output
    edit = '{"spec":{"parallelism":"5","image":"nginx:1.26","pullSecrets":["reg-b","reg-a"]}}'
    accepted, output = merge_patch(installed, namespace, "imagepulljob", "editable", edit)
    assert accepted, output


@pytest.mark.usefixtures("jobs_removed_after")
@pytest.mark.integration
def test_image_list_pull_job_pull_secrets_may_change(installed: Kubectl, namespace: str) -> None:
    accepted, output = create(installed, namespace, named(image_list_pull_job(pullSecrets=["reg-a"]), "list-secrets"))
    assert accepted, output
    accepted, output = merge_patch(
        installed, namespace, "imagelistpulljob", "list-secrets", '{"spec":{"pullSecrets":null}}'
    )
    assert accepted, output


# --- kubectl get ---------------------------------------------------------------------------------------------------


def _tables(output: str) -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    """kubectl's tables by the kind prefix of their first row's name ("" when names have none): header and rows.

    Cells are split on runs of two or more spaces, so a message with single spaces stays one cell.
    """
    tables: dict[str, tuple[list[str], dict[str, list[str]]]] = {}
    for block in output.strip().split("\n\n"):
        header, *lines = block.splitlines()
        rows = {cells[0]: cells for cells in (re.split(r"\s{2,}", line.strip()) for line in lines)}
        kind = next(iter(rows), "").partition("/")[0] if "/" in next(iter(rows), "") else ""
        tables[kind] = (header.split(), rows)
    return tables


@pytest.mark.usefixtures("jobs_removed_after")
@pytest.mark.integration
def test_kubectl_get_shows_printer_columns(installed: Kubectl, namespace: str, node_image_name: str) -> None:
    accepted, output = create(installed, namespace, named(image_pull_job(), "printed"))
    assert accepted, output
    job_status = {"desired": 3, "active": 1, "succeeded": 1, "failed": 1, "message": "job is running, progress 66.7%"}
    assert merge_patch(
        installed, namespace, "imagepulljob", "printed", json.dumps({"status": job_status}), status=True
    )[0]
    installed.kubectl("create", "-f", "-", input=json.dumps(named(node_image({}), node_image_name)))
    node_status = {"desired": 4, "pulling": 1, "succeeded": 2, "failed": 1, "waiting": 0}
    assert merge_patch(
        installed, "default", "nodeimage", node_image_name, json.dumps({"status": node_status}), status=True
    )[0]

    tables = _tables(installed.kubectl("get", "ipj,ni", "-n", namespace).stdout)
    header, rows = tables["imagepulljob.prepull.io"]
    assert header == ["NAME", "TOTAL", "ACTIVE", "SUCCEED", "FAILED", "AGE", "MESSAGE"]
    assert rows["imagepulljob.prepull.io/printed"][1:5] == ["3", "1", "1", "1"]
    assert rows["imagepulljob.prepull.io/printed"][6] == "job is running, progress 66.7%"
    header, rows = tables["nodeimage.prepull.io"]
    assert header == ["NAME", "DESIRED", "PULLING", "SUCCEED", "FAILED", "AGE"]
    assert rows[f"nodeimage.prepull.io/{node_image_name}"][1:5] == ["4", "1", "2", "1"]


@pytest.mark.usefixtures("jobs_removed_after")
@pytest.mark.integration
def test_kubectl_get_image_list_pull_jobs_and_the_prepull_category(
    installed: Kubectl, namespace: str, node_image_name: str
) -> None:
    accepted, output = create(installed, namespace, named(image_list_pull_job(), "listed"))
    assert accepted, output
    status = {"desired": 2, "active": 1, "succeeded": 1, "completed": 1}
    assert merge_patch(installed, namespace, "imagelistpulljob", "listed", json.dumps({"status": status}), status=True)[
        0
    ]
    header, rows = _tables(installed.kubectl("get", "ilpj", "-n", namespace).stdout)[""]
    assert header == ["NAME", "TOTAL", "ACTIVE", "SUCCEEDED", "COMPLETED", "AGE"]
    assert rows["listed"][1:5] == ["2", "1", "1", "1"]
    assert create(installed, namespace, named(image_pull_job(), "in-category"))[0]
    installed.kubectl("create", "-f", "-", input=json.dumps(named(node_image({}), node_image_name)))
    names = installed.kubectl("get", "prepull", "-n", namespace, "-o", "name").stdout.split()
    expected = ["imagelistpulljob.prepull.io/listed", "imagepulljob.prepull.io/in-category"]
    assert [name for name in expected if name in names] == expected
    assert f"nodeimage.prepull.io/{node_image_name}" in names


# --- the schemas themselves (no apiserver needed) ----------------------------------------------------------------


def _without_descriptions(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {key: _without_descriptions(value) for key, value in schema.items() if key != "description"}
    if isinstance(schema, list):
        return [_without_descriptions(value) for value in schema]
    return schema


def test_job_template_is_identical_in_both_job_kinds() -> None:
    single = dict(crd_schema("imagepulljobs")["properties"]["spec"]["properties"])
    listed = dict(crd_schema("imagelistpulljobs")["properties"]["spec"]["properties"])
    del single["image"], listed["images"]
    assert _without_descriptions(single) == _without_descriptions(listed)


def _unbounded(schema: dict[str, Any], path: str) -> Iterator[str]:
    """Paths of strings without maxLength, lists without maxItems and maps without maxProperties."""
    kind = schema.get("type")
    if kind == "string" and "maxLength" not in schema and schema.get("format") != "date-time" and "enum" not in schema:
        yield path
    if kind == "array":
        if "maxItems" not in schema:
            yield path
        yield from _unbounded(schema["items"], path + "[]")
    if kind == "object":
        if "additionalProperties" in schema:
            if "maxProperties" not in schema:
                yield path
            yield from _unbounded(schema["additionalProperties"], path + "{}")
        for name, child in schema.get("properties", {}).items():
            yield from _unbounded(child, f"{path}.{name}")


@pytest.mark.parametrize("plural", KIND_PLURALS.values())
def test_every_string_list_and_map_is_bounded(plural: str) -> None:
    root = crd_schema(plural)
    unbounded = [path for name in ("spec", "status") for path in _unbounded(root["properties"][name], name)]
    assert unbounded == []


@pytest.mark.parametrize(
    ("plural", "short_name"), [("imagepulljobs", "ipj"), ("imagelistpulljobs", "ilpj"), ("nodeimages", "ni")]
)
def test_names_short_names_and_category(plural: str, short_name: str) -> None:
    crd = load_crd(plural)
    assert crd["metadata"]["name"] == f"{plural}.prepull.io"
    assert crd["spec"]["names"]["shortNames"] == [short_name]
    assert crd["spec"]["names"]["categories"] == ["prepull"]
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1beta1", True, True)
    assert version["subresources"] == {"status": {}}
