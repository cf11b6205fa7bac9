"""`make demo`: the whole product on the local cluster, watched live in the terminal.

The demo is what a new user runs first, so it does what a user would do, with the same code paths: it brings
up (or re-uses) the local cluster, installs deploy/ and starts the three services as separate processes under
their own ServiceAccounts (`PrepullSystem`, as `make run` does), pushes sample images, applies the example
manifests from deploy/examples/ and the seed's `kubectl patch nodeimage`, and shows the jobs and the per-node
pulls live until every one reached the outcome it should. Then it prints `kubectl get ipj,ilpj,ni`, the
waterfall of one job's trace (from a local OTLP receiver the services export to) and how to explore further.

The services and the trace receiver keep running with the cluster; their PIDs are in `<state>/attached.json`,
so a re-run replaces them and `make cluster-down` stops them. `--teardown` stops everything at the end instead.
The exit code is 0 only when every outcome was reached within the timeout.
"""

from __future__ import annotations

import base64
import enum
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import kubernetes.client
import kubernetes.config

from localcluster import binaries, cluster, examples, liveview
from localcluster.images import ImageBuilder, ImageRecipe, push
from localcluster.process import ManagedProcess, free_port, wait_until
from localcluster.registry import Credentials
from localcluster.system import REPO, PrepullSystem

NAMESPACE = "prepull-demo"
GROUP, VERSION = "prepull.io", "v1beta1"
DEFAULT_TIMEOUT = 180.0
REFRESH_SECONDS = 0.5
TRACE_WAIT_SECONDS = 20.0
DEMO_FILE = "demo.json"
SEED_NODE = "node-2"
SEED_PATCH = '{"spec":{"images":{"ubuntu":{"tags":[{"tag":"latest","pullPolicy":{"ttlSecondsAfterFinished":300}}]}}}}'
# Image names the live view shows (NodeImage entries of other tools stay out of the way).
SHOWN_IMAGES = ("demo/", "ubuntu")
# Services export spans every half second instead of every 5 s, so the waterfall is there when jobs finish.
SPAN_EXPORT_DELAY_MS = "500"
MIB = 1024 * 1024


@dataclass(frozen=True)
class SampleImage:
    """One image the demo pushes; `private` ones go to the registry that requires a login."""

    repository: str
    tag: str
    total_bytes: int
    layers: int = 1
    private: bool = False


# The large one makes byte progress visible; the others stay small so the demo stays fast.
SAMPLE_IMAGES = (
    SampleImage("demo/big-model", "1.0", total_bytes=48 * MIB, layers=4),
    SampleImage("demo/hello", "1.0", total_bytes=1 * MIB),
    SampleImage("demo/private-app", "1.0", total_bytes=2 * MIB, layers=2, private=True),
    SampleImage("demo/private-sidecar", "1.0", total_bytes=1 * MIB, private=True),
    SampleImage("library/ubuntu", "latest", total_bytes=1 * MIB),
)


@dataclass(frozen=True)
class RegistryTarget:
    """Where `images.push` uploads: an address, and credentials for the auth registry."""

    address: str
    credentials: Credentials | None = None


# --- outcomes -----------------------------------------------------------------------------------------------


class Verdict(enum.Enum):
    MET = "met"
    PENDING = "pending"
    MISSED = "missed"


@dataclass
class Observed:
    """What the apiserver says now: the demo's jobs by name and every NodeImage by node."""

    image_pull_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    list_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    node_images: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What one part of the demo must reach; `judge` says whether it has, and if not, what it is at."""

    name: str
    judge: Callable[[Observed], tuple[Verdict, str]]


def expected_outcomes(state: Mapping[str, Any]) -> list[Outcome]:
    """The demo's four outcomes: two completing jobs, a `Never` job with every node done, and the seed patch."""
    selector = examples.rendered_object(examples.SELECTOR_JOB, {"REGISTRY": "r", "PRIVATE_REGISTRY": "r"})
    labels = selector["spec"]["selector"]["matchLabels"]
    matching = sum(1 for node in state["nodes"] if all(node["labels"].get(k) == v for k, v in labels.items()))
    return [
        Outcome(f"ipj/{_example_name(examples.SELECTOR_JOB)}", _completed_job(matching)),
        Outcome(f"ilpj/{_example_name(examples.PRIVATE_LIST_JOB)}", _completed_list_job),
        Outcome(f"ipj/{_example_name(examples.NEVER_JOB)}", _never_job_everywhere(len(state["nodes"]))),
        Outcome(f"nodeimage/{SEED_NODE} ubuntu:latest", _seed_pulled),
    ]


def _example_name(path: Path) -> str:
    name: str = examples.rendered_object(path, {"REGISTRY": "r", "PRIVATE_REGISTRY": "r"})["metadata"]["name"]
    return name


def _completed_job(matching_nodes: int) -> Callable[[Observed], tuple[Verdict, str]]:
    """An `Always` job: completes with every matching node succeeded and none failed."""
    name = _example_name(examples.SELECTOR_JOB)

    def judge(observed: Observed) -> tuple[Verdict, str]:
        status = (observed.image_pull_jobs.get(name) or {}).get("status") or {}
        counts = (status.get("desired"), status.get("succeeded"), status.get("failed", 0))
        if status.get("completionTime"):
            verdict = Verdict.MET if counts == (matching_nodes, matching_nodes, 0) else Verdict.MISSED
            return verdict, f"completed with desired/succeeded/failed {counts}, want {matching_nodes} succeeded"
        return Verdict.PENDING, f"not complete yet, desired/succeeded/failed {counts}"

    return judge


def _completed_list_job(observed: Observed) -> tuple[Verdict, str]:
    """The list job: every child job completed and succeeded."""
    name = _example_name(examples.PRIVATE_LIST_JOB)
    status = (observed.list_jobs.get(name) or {}).get("status") or {}
    counts = (status.get("desired"), status.get("completed", 0), status.get("succeeded", 0))
    if status.get("completionTime"):
        desired = counts[0]
        verdict = Verdict.MET if desired and counts == (desired, desired, desired) else Verdict.MISSED
        return verdict, f"completed with desired/completed/succeeded children {counts}"
    return Verdict.PENDING, f"not complete yet, desired/completed/succeeded children {counts}"


def _never_job_everywhere(node_count: int) -> Callable[[Observed], tuple[Verdict, str]]:
    """A `Never` job never completes: its outcome is every node succeeded (succeeded == desired == nodes)."""
    name = _example_name(examples.NEVER_JOB)

    def judge(observed: Observed) -> tuple[Verdict, str]:
        status = (observed.image_pull_jobs.get(name) or {}).get("status") or {}
        counts = (status.get("desired"), status.get("succeeded", 0), status.get("failed", 0))
        if counts == (node_count, node_count, 0):
            return Verdict.MET, f"succeeded on all {node_count} nodes"
        return Verdict.PENDING, f"desired/succeeded/failed {counts}, want {node_count} succeeded"

    return judge


def _seed_pulled(observed: Observed) -> tuple[Verdict, str]:
    """The seed patch: ubuntu:latest Succeeded in the node's NodeImage status."""
    status = (observed.node_images.get(SEED_NODE) or {}).get("status") or {}
    tags = ((status.get("imageStatuses") or {}).get("ubuntu") or {}).get("tags") or []
    phases = [tag.get("phase") for tag in tags if tag.get("tag") == "latest"]
    if "Succeeded" in phases:
        return Verdict.MET, "Succeeded"
    return Verdict.PENDING, f"phase {phases[0] if phases else 'not reported yet'}"


# --- the demo -----------------------------------------------------------------------------------------------


@dataclass
class Demo:
    """One run of the demo against the cluster in `state_dir` (started when none runs there)."""

    state_dir: Path
    timeout: float = DEFAULT_TIMEOUT
    out: TextIO = field(default_factory=lambda: sys.stdout)
    state: dict[str, Any] = field(init=False, default_factory=dict)
    system: PrepullSystem | None = field(init=False, default=None)
    receiver: ManagedProcess | None = field(init=False, default=None)
    _api: kubernetes.client.ApiClient | None = field(init=False, default=None)

    @property
    def spans_file(self) -> Path:
        return self.state_dir / "demo" / "spans.jsonl"

    def run(self, *, teardown: bool) -> int:
        """Steps 1-5 of the demo; returns the exit code. With `teardown`, stops everything before returning."""
        try:
            return self._run()
        except (OSError, RuntimeError, TimeoutError, kubernetes.client.ApiException) as error:
            print(f"\ndemo FAILED: {error}", file=self.out)
            print(f"logs: {self.state_dir / 'services'}/*.log, {self.state_dir}/control-plane/", file=self.out)
            return 1
        finally:
            if self._api is not None:
                self._api.close()
            if teardown:
                self._say("tearing down the local cluster (--teardown)")
                state = cluster.read_state(self.state_dir)
                if state is not None:
                    cluster.stop_recorded(state)

    def _run(self) -> int:
        started = time.monotonic()
        self._step(1, "local cluster, deploy/ and the three services")
        self.state = ensure_cluster(self.state_dir, say=self._say)
        self._start_services()
        self._step(2, "sample images")
        self._push_images()
        self._step(3, f"example jobs from deploy/examples/ in namespace {NAMESPACE}, and the seed patch")
        self._apply_examples()
        self._patch_seed()
        self._step(4, f"progress (timeout {self.timeout:.0f}s)")
        verdicts = self._watch(expected_outcomes(self.state))
        self._print_results()
        missed = {name: detail for name, (verdict, detail) in verdicts.items() if verdict is not Verdict.MET}
        self._say(f"demo finished in {time.monotonic() - started:.0f}s")
        if missed:
            for name, detail in missed.items():
                print(f"demo FAILED: {name} did not reach its expected outcome: {detail}", file=self.out)
            print(f"service logs: {self.state_dir / 'services'}", file=self.out)
            return 1
        self._say("every job reached its expected outcome")
        return 0

    # --- step 1 -------------------------------------------------------------------------------------------

    def _start_services(self) -> None:
        """Replace a previous run's services and receiver, then install deploy/ and start fresh ones."""
        stopped = cluster.stop_attached(self.state_dir)
        if stopped:
            self._say(f"stopped {len(stopped)} process(es) of a previous demo or `run`")
        self.receiver = start_receiver(self.spans_file)
        endpoint = f"http://127.0.0.1:{self._receiver_port}"
        self._record_processes(endpoint)
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": SPAN_EXPORT_DELAY_MS}
        self.system = PrepullSystem(self.state, extra_flags={"nodeimage_sync": ["--creation-delay", "1s"]}, env=env)
        self.system.install()
        try:
            self.system.start()
        finally:
            self._record_processes(endpoint)
        self._say(f"services running: {', '.join(self.system.services)}; traces to {endpoint}")

    @property
    def _receiver_port(self) -> int:
        assert self.receiver is not None
        return int(self.receiver.argv[self.receiver.argv.index("--port") + 1])

    def _record_processes(self, endpoint: str) -> None:
        """attached.json for `make cluster-down` and the next run; demo.json for a user who wants the traces."""
        assert self.receiver is not None
        services = self.system.services.values() if self.system is not None else []
        pids = [s.process.pid for s in services] + [self.receiver.pid]
        cluster.record_attached(self.state_dir, [pid for pid in pids if pid is not None])
        if self.system is not None:
            self.system.save()
        demo = {
            "namespace": NAMESPACE,
            "otlp_endpoint": endpoint,
            "spans_file": str(self.spans_file),
            "receiver_pid": self.receiver.pid,
        }
        (self.state_dir / DEMO_FILE).write_text(json.dumps(demo, indent=2))

    # --- step 2 -------------------------------------------------------------------------------------------

    def _push_images(self) -> None:
        builder = ImageBuilder(self.state_dir / "demo" / "images")
        for sample in SAMPLE_IMAGES:
            target = self._private_registry() if sample.private else self._open_registry()
            recipe = ImageRecipe(name=sample.repository, total_bytes=sample.total_bytes, layers=sample.layers)
            pushed = push(builder.build(recipe), target, sample.repository, sample.tag)
            where = "private, needs a login" if sample.private else "public"
            self._say(f"pushed {pushed.reference} ({sample.total_bytes / MIB:.0f} MiB, {where})")

    def _open_registry(self) -> RegistryTarget:
        return RegistryTarget(self.state["registries"]["open"]["address"])

    def _private_registry(self) -> RegistryTarget:
        auth = self.state["registries"]["auth"]
        return RegistryTarget(auth["address"], Credentials(auth["username"], auth["password"]))

    # --- step 3 -------------------------------------------------------------------------------------------

    def _apply_examples(self) -> None:
        """A clean namespace with the pull secret, then `kubectl apply` of each example with its placeholders."""
        system = self._system
        if not system.kubectl("get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name"):
            system.kubectl("create", "namespace", NAMESPACE)
        system.kubectl("delete", "imagepulljobs,imagelistpulljobs", "--all", "-n", NAMESPACE, "--wait=true")
        self._create_pull_secret()
        values = examples.placeholders(self._open_registry().address, self._private_registry().address)
        manifests = self.state_dir / "demo" / "manifests"
        manifests.mkdir(parents=True, exist_ok=True)
        for example in examples.JOB_EXAMPLES:
            rendered = manifests / example.name
            rendered.write_text(examples.render(example, values))
            applied = system.kubectl("apply", "-n", NAMESPACE, "-f", str(rendered)).strip()
            self._say(f"kubectl apply -f deploy/examples/{example.name}: {applied}")

    def _create_pull_secret(self) -> None:
        """The dockerconfigjson Secret the private example names, created through the API (no password in argv)."""
        registry = self._private_registry()
        assert registry.credentials is not None
        login = f"{registry.credentials.username}:{registry.credentials.password}"
        config = {"auths": {registry.address: {"auth": base64.b64encode(login.encode()).decode()}}}
        secret = {
            "metadata": {"name": examples.PULL_SECRET},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
        }
        core = kubernetes.client.CoreV1Api(self._client())
        core.delete_collection_namespaced_secret(NAMESPACE, field_selector=f"metadata.name={examples.PULL_SECRET}")
        core.create_namespaced_secret(NAMESPACE, secret)
        self._say(f"created Secret {NAMESPACE}/{examples.PULL_SECRET} for {registry.address}")

    def _patch_seed(self) -> None:
        system = self._system
        wait_until(
            lambda: bool(system.kubectl("get", "nodeimage", SEED_NODE, "--ignore-not-found", "-o", "name")),
            timeout=60,
            interval=0.5,
            what=f"NodeImage {SEED_NODE} (nodeimage_sync creates one per Node)",
        )
        system.kubectl("patch", "nodeimage", SEED_NODE, "--type=merge", "-p", SEED_PATCH)
        self._say(f"kubectl patch nodeimage {SEED_NODE} --type=merge -p '{SEED_PATCH}'")

    # --- step 4 -------------------------------------------------------------------------------------------

    def _watch(self, outcomes: Sequence[Outcome]) -> dict[str, tuple[Verdict, str]]:
        """Refresh the live view until every outcome is met, one is missed, or the timeout passes."""
        view = liveview.LiveView(out=self.out)
        deadline = time.monotonic() + self.timeout
        verdicts: dict[str, tuple[Verdict, str]] = {}
        while True:
            observed = self._observe()
            verdicts = {outcome.name: outcome.judge(observed) for outcome in outcomes}
            awaited = [name for name, (verdict, _) in verdicts.items() if verdict is Verdict.PENDING]
            rows = liveview.job_rows(observed.image_pull_jobs.values(), observed.list_jobs.values())
            rows += liveview.node_rows(observed.node_images.values(), shown=SHOWN_IMAGES)
            view.show(rows, footer=f"waiting for: {', '.join(awaited)}" if awaited else "all outcomes reached")
            if not awaited or any(verdict is Verdict.MISSED for verdict, _ in verdicts.values()):
                return verdicts
            if time.monotonic() > deadline:
                self._say(f"timed out after {self.timeout:.0f}s")
                return verdicts
            time.sleep(REFRESH_SECONDS)

    def _observe(self) -> Observed:
        custom = kubernetes.client.CustomObjectsApi(self._client())
        ipjs = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "imagepulljobs")["items"]
        ilpjs = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "imagelistpulljobs")["items"]
        node_images = custom.list_cluster_custom_object(GROUP, VERSION, "nodeimages")["items"]
        # Children of the list job are jobs too, but the table shows what the user applied.
        own = [job for job in ipjs if not (job["metadata"].get("ownerReferences") or [])]
        return Observed(
            image_pull_jobs={job["metadata"]["name"]: job for job in own},
            list_jobs={job["metadata"]["name"]: job for job in ilpjs},
            node_images={ni["metadata"]["name"]: ni for ni in node_images},
        )

    def _print_results(self) -> None:
        """The final tables, the waterfall of the selector job's trace, and what to try next."""
        self._say(f"kubectl get ipj,ilpj,ni -n {NAMESPACE}")
        print(self._system.kubectl("get", "ipj,ilpj,ni", "-n", NAMESPACE), file=self.out)
        job = f"ipj/{_example_name(examples.SELECTOR_JOB)}"
        self._say(f"prepull trace {job} -n {NAMESPACE} --spans {self.spans_file}")
        print(self._waterfall(job), file=self.out)
        self._print_explore(job)

    def _waterfall(self, job: str) -> str:
        """`prepull trace` output once the spans of every node of the job have arrived (or what it says then)."""
        command = [sys.executable, "-m", "services.cli", "trace", job, "-n", NAMESPACE]
        command += ["--kubeconfig", self.state["kubeconfig"], "--spans", str(self.spans_file)]
        deadline = time.monotonic() + TRACE_WAIT_SECONDS
        while True:
            result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
            complete = result.returncode == 0 and all(f"[{node}]" in result.stdout for node in self._selected_nodes())
            if complete or time.monotonic() > deadline:
                return result.stdout + result.stderr
            time.sleep(1.0)

    def _selected_nodes(self) -> list[str]:
        selector = examples.rendered_object(examples.SELECTOR_JOB, {"REGISTRY": "r", "PRIVATE_REGISTRY": "r"})
        labels = selector["spec"]["selector"]["matchLabels"]
        nodes = self.state["nodes"]
        return [n["name"] for n in nodes if all(n["labels"].get(k) == v for k, v in labels.items())]

    def _print_explore(self, job: str) -> None:
        kubeconfig = self.state["kubeconfig"]
        lines = [
            "explore further:",
            f"  export KUBECONFIG={kubeconfig}",
            f"  export PATH={binaries.binary('kubectl').parent}:$PATH   # kubectl v1.34",
            f"  kubectl describe {job} -n {NAMESPACE}",
            f"  kubectl get nodeimage {SEED_NODE} -o yaml",
            f"  {sys.executable} -m services.cli trace {job} -n {NAMESPACE} --spans {self.spans_file}",
            f"  service logs: {self.state_dir / 'services'}/*.log",
            "  make cluster-down   # stops the cluster, the services and the trace receiver",
        ]
        print("\n".join(lines), file=self.out)

    # --- helpers ------------------------------------------------------------------------------------------

    @property
    def _system(self) -> PrepullSystem:
        assert self.system is not None, "services not started"
        return self.system

    def _client(self) -> kubernetes.client.ApiClient:
        if self._api is None:
            self._api = kubernetes.config.new_client_from_config(config_file=self.state["kubeconfig"])
        return self._api

    def _step(self, number: int, what: str) -> None:
        print(f"\n== {number}. {what}", file=self.out, flush=True)

    def _say(self, message: str) -> None:
        print(f"   {message}", file=self.out, flush=True)


def ensure_cluster(state_dir: Path, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The running local cluster in `state_dir`, started (3 nodes) when none answers there; its cluster.json."""
    state = cluster.read_state(state_dir)
    if state is not None and cluster.running(state) and apiserver_answers(state):
        say(f"re-using the running local cluster in {state_dir}")
        return state
    if state is not None:
        cluster.stop_recorded(state)
    say(f"starting the local cluster in {state_dir} (3 nodes, 2 registries)")
    local = cluster.LocalCluster(state_dir, node_count=cluster.DEFAULT_NODE_COUNT, refresh_tokens_in_process=False)
    local.start()
    local.start_token_refresher()
    return local.describe()


def apiserver_answers(state: Mapping[str, Any]) -> bool:
    """True when the recorded apiserver serves `/version` with the recorded kubeconfig."""
    try:
        with kubernetes.config.new_client_from_config(config_file=state["kubeconfig"]) as api:
            kubernetes.client.VersionApi(api).get_code(_request_timeout=5)
    except Exception:
        return False
    return True


def start_receiver(spans_file: Path, *, timeout: float = 30.0) -> ManagedProcess:
    """The local OTLP receiver as a child process on a free port, appending spans to `spans_file`."""
    port = free_port()
    receiver = ManagedProcess(
        name="otlp-receiver",
        argv=[sys.executable, "-m", "localcluster.otlpreceiver", "--port", str(port), "--out", str(spans_file)],
        log_path=spans_file.parent / "otlp-receiver.log",
        cwd=REPO,
    )
    receiver.start()
    wait_until(lambda: _listening(port), timeout=timeout, interval=0.2, what="the OTLP receiver to listen")
    return receiver


def _listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
