"""One trace per job across all three services, and the metrics every service exposes after a pull (issue 7).

The three services run as processes (as in test_end_to_end.py) and export OTLP to a receiver in this process,
which stores every span as a JSON line. One private-image job is pulled through the credentials service; the
tests then read the job's trace id from its annotation and check what the file holds for it: spans of the
scheduler, every puller and nodeimage_sync, parented all the way up to the job's exported root span, with the
pull's attributes, and no credential anywhere in the file. A second job fails on purpose, for the error
attributes and the failure metrics.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from localcluster.cluster import LocalCluster
from localcluster.images import ImageBuilder, ImageRecipe, PushedImage, push
from localcluster.otlpreceiver import OtlpReceiver
from localcluster.process import wait_until
from localcluster.registry import Credentials
from localcluster.system import PrepullSystem
from services.cli.__main__ import main as prepull
from services.shared.api import constants
from services.shared.telemetry import attributes

pytestmark = pytest.mark.integration

GROUP, VERSION = "prepull.io", "v1beta1"
JOB_TIMEOUT = 120.0
SPAN_TIMEOUT = 60.0
NODE_COUNT = 2
DASHBOARD_SERIES = Path(__file__).resolve().parents[3] / "deploy" / "observability" / "grafana-dashboard-series.txt"

SCHEDULER, PULLER, SYNC = "prepull-scheduler", "prepull-puller", "prepull-nodeimage-sync"
CREDENTIALS_RPC = "/prepull.v1.Credentials/GetPullCredentials"
PULL_IMAGE_RPC = "/runtime.v1.ImageService/PullImage"
IMAGE_STATUS_RPC = "/runtime.v1.ImageService/ImageStatus"
REPORT_RPC = "/prepull.v1.NodeInventory/ReportImages"


@dataclass(frozen=True)
class RegistryAt:
    """A registry as the image pusher needs it: address and optional credentials."""

    address: str
    credentials: Credentials | None = None


@dataclass(frozen=True)
class Traced:
    """The running system, the receiver its spans go to, and the secrets that must never be exported."""

    local: LocalCluster
    services: PrepullSystem
    receiver: OtlpReceiver
    secrets: set[str]


@dataclass(frozen=True)
class PulledJob:
    """The private job, pulled: where it lives and its trace id."""

    namespace: str
    name: str
    trace_id: str
    image: PushedImage


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    root = Path(tmp_path_factory.mktemp("tracing"))
    receiver = OtlpReceiver(root / "spans.jsonl")
    receiver.start()
    local = LocalCluster(root / "cluster", node_count=NODE_COUNT)
    local.start()
    services = PrepullSystem(
        local.describe(),
        extra_flags={"nodeimage_sync": ["--creation-delay", "1s"]},
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"},
    )
    try:
        services.install()
        services.start()
        yield Traced(local, services, receiver, set())
    finally:
        logs = services.log_tails(40)
        services.stop()
        local.stop()
        receiver.stop()
        print(logs)


@pytest.fixture(scope="module")
def pulled(traced: Traced, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulledJob]:
    """A private image pulled on every node by one job naming a pull secret; its secrets recorded in `traced`."""
    local = traced.local
    namespace = f"trace-{uuid.uuid4().hex[:8]}"
    core = kubernetes.client.CoreV1Api(local.api_client())
    core.create_namespace({"metadata": {"name": namespace}})
    credentials = local.auth_registry.credentials
    assert credentials is not None
    builder = ImageBuilder(Path(tmp_path_factory.mktemp("tracing-images")))
    recipe = ImageRecipe(name="traced", total_bytes=2**20, layers=2, seed=uuid.uuid4().hex)
    image = push(builder.build(recipe), RegistryAt(local.auth_registry.address, credentials), "trace/private", "v1")
    auth = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    dockerconfig = base64.b64encode(json.dumps({"auths": {local.auth_registry.address: {"auth": auth}}}).encode())
    secret = {
        "metadata": {"name": "registry-auth"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": dockerconfig.decode()},
    }
    core.create_namespaced_secret(namespace, secret)
    traced.secrets.update({credentials.password, auth, dockerconfig.decode()})
    spec = {"image": image.reference, "parallelism": NODE_COUNT, "pullSecrets": ["registry-auth"]}
    create_job(local, namespace, "private", {**spec, "completionPolicy": {"type": "Always"}})
    status = wait_for_completion(local, namespace, "private")
    assert (status["desired"], status["succeeded"], status["failed"]) == (NODE_COUNT, NODE_COUNT, 0), status
    traced.secrets.update(token_secrets(traced))
    yield PulledJob(namespace, "private", job_trace_id(local, namespace, "private"), image)
    core.delete_namespace(namespace)


# --- helpers --------------------------------------------------------------------------------------------


def custom(local: LocalCluster) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(local.api_client())


def create_job(local: LocalCluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ImagePullJob", "metadata": {"name": name}, "spec": spec}
    custom(local).create_namespaced_custom_object(GROUP, VERSION, namespace, "imagepulljobs", body)


def get_job(local: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    job: dict[str, Any] = custom(local).get_namespaced_custom_object(GROUP, VERSION, namespace, "imagepulljobs", name)
    return job


def wait_for_completion(local: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def complete() -> bool:
        seen.update(get_job(local, namespace, name).get("status") or {})
        return bool(seen.get("completionTime"))

    wait_until(complete, timeout=JOB_TIMEOUT, interval=0.5, what=f"job {namespace}/{name} to complete ({seen})")
    return seen


def job_trace_id(local: LocalCluster, namespace: str, name: str) -> str:
    traceparent = get_job(local, namespace, name)["metadata"]["annotations"][constants.ANNOTATION_TRACE_CONTEXT]
    version, trace_id, _span_id, _flags = traceparent.split("-")
    assert version == "00" and len(trace_id) == 32
    return str(trace_id)


def token_secrets(traced: Traced) -> set[str]:
    """Every bearer token the services hold: the pullers' audience token files and the kubeconfig tokens."""
    found = set()
    for node in traced.services.cluster_state["nodes"]:
        for path in node["token_files"].values():
            found.add(Path(path).read_text().strip())
    for kubeconfig in traced.services.state_dir.glob("*.kubeconfig"):
        text = kubeconfig.read_text()
        found.update(line.split("token:", 1)[1].strip() for line in text.splitlines() if "token:" in line)
    return {token for token in found if token}


def trace_spans(traced: Traced, trace_id: str) -> list[dict[str, Any]]:
    return [span for span in traced.receiver.spans.read() if span["trace_id"] == trace_id]


def named(spans: list[dict[str, Any]], name: str, service: str | None = None) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"] == name and (service is None or s["service.name"] == service)]


def wait_for_spans(traced: Traced, trace_id: str, wanted: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
    """The trace's spans once it holds at least `wanted[(service, name)]` spans of each kind."""
    spans: list[dict[str, Any]] = []

    def complete() -> bool:
        spans[:] = trace_spans(traced, trace_id)
        return all(len(named(spans, name, service)) >= count for (service, name), count in wanted.items())

    def missing() -> str:
        return str({key: len(named(spans, key[1], key[0])) for key in wanted})

    try:
        wait_until(complete, timeout=SPAN_TIMEOUT, interval=0.5, what=f"spans of trace {trace_id}")
    except Exception as error:
        raise AssertionError(f"trace {trace_id} incomplete: {missing()}") from error
    return spans


def node_names(traced: Traced) -> list[str]:
    return sorted(node["name"] for node in traced.services.cluster_state["nodes"])


def task_spans(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in spans if s["service.name"] == PULLER and s["name"].startswith("pull ")]


def families(service_text: str) -> dict[str, str]:
    """Metric family name → type, from a Prometheus exposition."""
    return {family.name: family.type for family in text_string_to_metric_families(service_text)}


def exposed_series(text: str) -> set[str]:
    """The series names an exposition offers to queries: `_total` for counters, `_bucket`/`_sum`/`_count`
    for histograms, the bare name for gauges (families without samples yet included)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


# --- tracing --------------------------------------------------------------------------------------------


WANTED_SPANS = {
    (SCHEDULER, "reconcile"): 2,
    (SCHEDULER, "nodeimage.write"): NODE_COUNT,
    (SCHEDULER, CREDENTIALS_RPC): NODE_COUNT,
    (PULLER, CREDENTIALS_RPC): NODE_COUNT,
    (PULLER, PULL_IMAGE_RPC): NODE_COUNT,
    (PULLER, IMAGE_STATUS_RPC): NODE_COUNT,
    (PULLER, "nodeimage.status.write"): NODE_COUNT,
    (PULLER, "inventory.report"): NODE_COUNT,
    (SYNC, REPORT_RPC): NODE_COUNT,
    (SYNC, "inventory.update"): NODE_COUNT,
}


def test_one_trace_holds_the_job_across_all_three_services(traced: Traced, pulled: PulledJob) -> None:
    spans = wait_for_spans(traced, pulled.trace_id, WANTED_SPANS)
    assert {s["service.name"] for s in spans} == {SCHEDULER, PULLER, SYNC}
    roots = [s for s in spans if not s["parent_span_id"]]
    assert [r["name"] for r in roots] == [f"ImagePullJob {pulled.namespace}/{pulled.name}"]
    root = roots[0]
    assert root["service.name"] == SCHEDULER
    assert root["attributes"][attributes.JOB_NAME] == pulled.name
    assert root["attributes"][attributes.K8S_NAMESPACE_NAME] == pulled.namespace
    assert (
        root["attributes"][attributes.JOB_UID]
        == get_job(traced.local, pulled.namespace, pulled.name)["metadata"]["uid"]
    )
    assert root["attributes"][attributes.CONTAINER_IMAGE_NAME] == pulled.image.reference
    assert (
        root["span_id"]
        == get_job(traced.local, pulled.namespace, pulled.name)["metadata"]["annotations"][
            constants.ANNOTATION_TRACE_CONTEXT
        ].split("-")[2]
    )
    exported = {s["span_id"] for s in spans}
    orphans = [
        (s["service.name"], s["name"]) for s in spans if s["parent_span_id"] and s["parent_span_id"] not in exported
    ]
    assert orphans == [], "every span's parent is in the trace"


def test_each_pullers_task_span_continues_the_job_and_holds_its_calls(traced: Traced, pulled: PulledJob) -> None:
    spans = wait_for_spans(traced, pulled.trace_id, WANTED_SPANS)
    by_id = {s["span_id"]: s for s in spans}
    root = next(s for s in spans if not s["parent_span_id"])
    tasks = task_spans(spans)
    assert sorted(t["attributes"][attributes.K8S_NODE_NAME] for t in tasks) == node_names(traced)
    for task in tasks:
        node = task["attributes"][attributes.K8S_NODE_NAME]
        assert task["parent_span_id"] == root["span_id"], node
        assert task["status"]["code"] != "ERROR", node
        attrs = task["attributes"]
        assert attrs[attributes.CONTAINER_IMAGE_NAME] == pulled.image.reference
        assert any(
            digest.endswith(pulled.image.manifest_digest) for digest in attrs[attributes.CONTAINER_IMAGE_REPO_DIGESTS]
        )
        assert attrs[attributes.IMAGE_SIZE_BYTES] > 0
        assert attrs[attributes.PULL_ATTEMPT] == 1
        assert attrs[attributes.PULL_DURATION_SECONDS] >= 0
        inside = descendants(task, spans)
        names = {s["name"] for s in inside}
        assert {CREDENTIALS_RPC, PULL_IMAGE_RPC, IMAGE_STATUS_RPC, "attempt"} <= names, (node, names)
        client = next(s for s in inside if s["name"] == CREDENTIALS_RPC)
        server = [s for s in spans if s["name"] == CREDENTIALS_RPC and s["parent_span_id"] == client["span_id"]]
        assert [s["service.name"] for s in server] == [SCHEDULER], node
        assert server[0]["attributes"][attributes.K8S_NODE_NAME] == node
        writes = [
            s for s in named(spans, "nodeimage.status.write") if s["attributes"][attributes.K8S_NODE_NAME] == node
        ]
        assert writes and all(under(w, task, by_id) or linked(w, task) for w in writes), node
        reports = [s for s in named(spans, "inventory.report") if s["attributes"][attributes.K8S_NODE_NAME] == node]
        assert reports and all(under(r, task, by_id) or linked(r, task) for r in reports), node
    updates = named(spans, "inventory.update", SYNC)
    assert sorted({u["attributes"][attributes.K8S_NODE_NAME] for u in updates}) == node_names(traced)
    tag_writes = named(spans, "nodeimage.write", SCHEDULER)
    assert sorted({w["attributes"][attributes.K8S_NODE_NAME] for w in tag_writes}) == node_names(traced)
    assert all(by_id[w["parent_span_id"]]["name"] == "reconcile" for w in tag_writes)


def descendants(span: dict[str, Any], spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    children = [s for s in spans if s["parent_span_id"] == span["span_id"]]
    return children + [d for child in children for d in descendants(child, spans)]


def under(span: dict[str, Any], ancestor: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> bool:
    parent = by_id.get(span["parent_span_id"])
    while parent is not None:
        if parent["span_id"] == ancestor["span_id"]:
            return True
        parent = by_id.get(parent["parent_span_id"])
    return False


def linked(span: dict[str, Any], target: dict[str, Any]) -> bool:
    return any(link["span_id"] == target["span_id"] for link in span["links"])


def test_no_credential_is_exported(traced: Traced, pulled: PulledJob) -> None:
    wait_for_spans(traced, pulled.trace_id, WANTED_SPANS)
    assert traced.receiver.spans.path.exists()
    exported = traced.receiver.spans.path.read_text()
    secrets = traced.secrets | token_secrets(traced)
    assert len(secrets) >= 3 + NODE_COUNT
    leaked = [secret[:4] + "…" for secret in secrets if secret in exported]
    assert leaked == [], "credentials found in the exported spans"


def test_prepull_trace_prints_every_node_of_the_job(
    traced: Traced, pulled: PulledJob, capsys: pytest.CaptureFixture[str]
) -> None:
    wait_for_spans(traced, pulled.trace_id, WANTED_SPANS)
    kubeconfig = traced.services.cluster_state["kubeconfig"]
    argv = ["trace", pulled.name, "-n", pulled.namespace, "--kubeconfig", kubeconfig]
    code = prepull([*argv, "--spans", str(traced.receiver.spans.path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith(f"trace {pulled.trace_id}")
    for node in node_names(traced):
        assert f"[{node}]" in out, out
    assert f"ImagePullJob {pulled.namespace}/{pulled.name}" in out


def test_kubectl_describe_shows_the_trace_id(traced: Traced, pulled: PulledJob) -> None:
    described = traced.services.kubectl("describe", "ipj", pulled.name, "-n", pulled.namespace)
    assert constants.ANNOTATION_TRACE_CONTEXT in described
    assert pulled.trace_id in described


def test_a_failed_pull_is_an_error_span_with_its_error_type(traced: Traced, pulled: PulledJob) -> None:
    local = traced.local
    missing = f"{local.open_registry.address}/trace/missing:{uuid.uuid4().hex[:8]}"
    spec = {
        "image": missing,
        "parallelism": 1,
        "selector": {"names": [node_names(traced)[0]]},
        "pullPolicy": {"backoffLimit": 0, "timeoutSeconds": 30},
        "completionPolicy": {"type": "Always"},
    }
    create_job(local, pulled.namespace, "missing", spec)
    status = wait_for_completion(local, pulled.namespace, "missing")
    assert status["failed"] == 1, status
    trace_id = job_trace_id(local, pulled.namespace, "missing")
    spans = wait_for_spans(traced, trace_id, {(PULLER, PULL_IMAGE_RPC): 1, (PULLER, "nodeimage.status.write"): 1})
    (task,) = task_spans(spans)
    assert task["status"]["code"] == "ERROR"
    assert task["attributes"][attributes.ERROR_TYPE] == "PullFailed"
    assert task["attributes"][attributes.PULL_ATTEMPT] == 1
    assert task["attributes"][attributes.K8S_NODE_NAME] == node_names(traced)[0]
    assert named(spans, PULL_IMAGE_RPC)[0]["status"]["code"] == "ERROR"
    metrics = traced.services.services[f"puller-{node_names(traced)[0]}"].metrics()
    failures = {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "prepull_puller_pull_failures_total"
    }
    assert failures.get("PullFailed", 0) >= 1, failures


# --- metrics --------------------------------------------------------------------------------------------

REQUIRED_SERIES = {
    "scheduler": {
        "prepull_scheduler_reconciles_total",
        "prepull_scheduler_reconcile_errors_total",
        "prepull_scheduler_api_errors_total",
        "prepull_scheduler_queue_wait_seconds_bucket",
        "prepull_scheduler_credentials_requests_total",
    },
    "nodeimage_sync": {
        "prepull_nodeimage_sync_reconciles_total",
        "prepull_nodeimage_sync_api_errors_total",
        "prepull_nodeimage_sync_queue_wait_seconds_bucket",
        "prepull_nodeimage_sync_inventory_reports_total",
    },
    "puller": {
        "prepull_puller_pull_duration_seconds_bucket",
        "prepull_puller_pulled_bytes_total",
        "prepull_puller_pulls_in_flight",
        "prepull_puller_slot_wait_seconds_bucket",
        "prepull_puller_pull_failures_total",
        "prepull_puller_reconciles_total",
        "prepull_puller_api_errors_total",
        "prepull_puller_pulls_total",
    },
}


def scrape(traced: Traced) -> dict[str, str]:
    return {name: service.metrics() for name, service in traced.services.services.items()}


def test_every_service_exposes_the_pull_metrics(traced: Traced, pulled: PulledJob) -> None:
    texts = scrape(traced)
    for name, text in texts.items():
        kind = "puller" if name.startswith("puller-") else name
        missing = REQUIRED_SERIES[kind] - exposed_series(text)
        assert missing == set(), f"{name} lacks {sorted(missing)}"
    for name, text in texts.items():
        if not name.startswith("puller-"):
            continue
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        succeeded = samples[("prepull_puller_pull_duration_seconds_count", (("result", "succeeded"),))]
        assert succeeded >= 1, name
        assert samples[("prepull_puller_pulled_bytes_total", ())] >= 2**20, name
        assert families(text)["prepull_puller_pull_duration_seconds"] == "histogram"
    scheduler = families(texts["scheduler"])
    assert scheduler["prepull_scheduler_queue_wait_seconds"] == "histogram"


def test_every_series_the_dashboard_queries_exists_after_a_pull(traced: Traced, pulled: PulledJob) -> None:
    wanted = {
        line.strip() for line in DASHBOARD_SERIES.read_text().splitlines() if line.strip() and not line.startswith("#")
    }
    exposed = set().union(*(exposed_series(text) for text in scrape(traced).values()))
    assert sorted(wanted - exposed) == []
