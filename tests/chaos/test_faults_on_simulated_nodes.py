"""Faults during 50-node ImagePullJobs on simulated nodes: right counts, nothing stuck, no extra pulls, recovery.

The scheduler and nodeimage_sync run as their own processes; the 50 pullers run as agents, ten per host process
(`localcluster.simnodes`), over a simulated CRI whose pulls take a few seconds and are journaled per node, so
"no node pulled more often than the retries allow" is checked exactly: a node pulls the job's image once, plus
once more for every time its puller was killed (a pull cut off by SIGKILL is started again, as it must be), or
for every attempt the runtime failed (a registry error, a runtime stopped mid-pull), at most `backoffLimit`.

Faults, each drawn from the printed seed (`PREPULL_CHAOS_SEED` replays the schedule):

- repeated kills: within ONE job, several `kill -9` of the scheduler, nodeimage_sync and a puller host (ten
  node agents at once; a seeded pick among the hosts with a pull in flight, so kills cut pulls off) at seeded
  moments, each process down for a seeded 0.2-2 s before the kubelet stand-in (`Restarter`) starts it again;
- control-plane outage: kube-apiserver and etcd stopped (each SIGTERM or SIGKILL) for `OUTAGE_SECONDS`;
- node churn: a node deleted mid-job, one node added that the job's selector matches and one it does not.
  Upstream (spec/upstream-behaviour.md §2.10): the deleted node drops out of `desired` and every counter, the
  matching new node joins the running job and pulls, the other one does not. One node's pulls are held until
  the new node has been given the image, so the job is provably still running when the nodes change.
- registry errors then recovery: 0.5-3 s into the job, every node's pulls fail as through containerd on a
  registry answering 503 (the bed-wide fail file of `localcluster.simruntime`) for `FAULT_SECONDS`, then succeed;
- containerd stopped mid-pull and restarted: 0.5-3 s into the job, one node's runtime (a seeded pick among the
  nodes with a pull in flight) is stopped for `FAULT_SECONDS`: every CRI call of that node fails UNAVAILABLE,
  the pull in flight too; then it is started again on the same images.

After each round: the job completes with `desired = succeeded =` the matching nodes and `failed = 0`; no tag of
the image is Pulling; the NodeImages are exactly the current Nodes, each matching one with exactly one entry for
the tag; the pull journals are within bounds; every service and host is alive and ready again.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from localcluster import cluster, nodes
from localcluster.process import ManagedProcess, wait_until
from localcluster.simruntime import ALL_NODES_FAIL
from tests.support.restarter import Restarter
from tests.support.simulated_system import (
    API_ERRORS,
    SimulatedSystem,
    create_job,
    fresh_namespace,
    job_complete,
    nodeimages,
    running_simulated_system,
    spec_entries,
    status_phases,
    wait_for_completion,
)
from tests.support.system_helpers import full_suite

pytestmark = pytest.mark.integration

NODES = 50
NODES_PER_HOST = 10
PARALLELISM = 10
PULL_SECONDS = 3.0 if full_suite() else 1.5
"""Every simulated pull takes this long: a job runs five waves of pulls, so faults land mid-pull."""
KILLS_PER_JOB = 6 if full_suite() else 3
OUTAGE_SECONDS = 20.0 if full_suite() else 5.0
BACKOFF_LIMIT = 6
FAULT_SECONDS = 5.0
"""How long the registry fails, or a node's containerd stays stopped."""
FAULT_BACKOFF_LIMIT = 10
"""backoffLimit of the runtime-fault rounds: retries sleep 1, 2, 4, 4 ... s, so a fault of `FAULT_SECONDS` costs
a node three or four failed attempts; ten leave room for a slow machine without hiding a runaway retry loop."""
JOB_TIMEOUT = 600.0
RECOVERY_TIMEOUT = 120.0
ZONE = "topology.kubernetes.io/zone"
SELECTOR = {"matchExpressions": [{"key": ZONE, "operator": "Exists"}]}
"""Every original node has a zone label; a node added without one is not a target."""
LEASE_FLAGS = [
    *("--leader-elect-lease-duration", "6s"),
    *("--leader-elect-renew-deadline", "4s"),
    *("--leader-elect-retry-period", "1s"),
]
SERVICE_FLAGS = {"scheduler": LEASE_FLAGS, "nodeimage_sync": [*LEASE_FLAGS, "--creation-delay", "1s"]}
AGENT_FLAGS = ["--backoff-initial", "1s", "--backoff-max", "4s", "--resync-pulling", "1s"]


@dataclass
class FleetBed:
    """The running system, the kubelet stand-in, and which Nodes exist now (they change in node-churn rounds)."""

    system: SimulatedSystem
    restarter: Restarter
    matching: set[str]
    """Nodes the jobs' selector matches."""
    others: set[str]
    """Nodes it does not match."""


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetBed]:
    names = cluster.node_names(NODES)
    per_host = {
        f"host-{index // NODES_PER_HOST + 1}": names[index : index + NODES_PER_HOST]
        for index in range(0, NODES, NODES_PER_HOST)
    }
    with running_simulated_system(
        Path(tmp_path_factory.mktemp("chaos-fleet")),
        nodes_per_host=per_host,
        labels_of=cluster.default_labels,
        pull_latency=PULL_SECONDS,
        service_flags=SERVICE_FLAGS,
        agent_flags=AGENT_FLAGS,
    ) as system:
        restarter = Restarter(system.services, also=system.processes)
        restarter.start()
        try:
            yield FleetBed(system, restarter, set(names), set())
        finally:
            print(f"restarts by the kubelet stand-in: {dict(restarter.restarts)}")
            restarter.stop()


@dataclass(frozen=True)
class Round:
    """One job of one round: where it is, what it pulls, and how to say so in a failure message."""

    namespace: str
    reference: str
    context: str

    @property
    def name_and_tag(self) -> tuple[str, str]:
        name, tag = self.reference.rsplit(":", 1)
        return name, tag


def start_job(
    bed: FleetBed, namespace: str, rng: random.Random, context: str, *, backoff_limit: int = BACKOFF_LIMIT
) -> Round:
    reference = f"sim.registry.test/chaos/img-{rng.getrandbits(48):012x}:v1"
    spec = {
        "image": reference,
        "parallelism": PARALLELISM,
        "selector": SELECTOR,
        "pullPolicy": {"backoffLimit": backoff_limit, "timeoutSeconds": 300},
        "completionPolicy": {"type": "Always", "activeDeadlineSeconds": int(JOB_TIMEOUT)},
    }
    create_job(bed.system.api, namespace, "chaos", spec)
    return Round(namespace, reference, context)


# --- faults --------------------------------------------------------------------------------------------------


def kill_and_restart(bed: FleetBed, target: str, rng: random.Random) -> None:
    """SIGKILL one watched process, leave it down a seeded while, start it again (as the kubelet would)."""
    process: ManagedProcess = bed.restarter.watched()[target]
    with bed.restarter.paused():
        process.stop(kill=True)
        time.sleep(rng.uniform(0.2, 2.0))
        process.start()


HOST = "a puller host"


def kill_schedule(rng: random.Random) -> list[tuple[float, str]]:
    """(pause before, what) for each kill: every kind once in a seeded order, then seeded extra kills."""
    kinds = ["scheduler", "nodeimage_sync", HOST]
    rng.shuffle(kinds)
    kinds += [rng.choice(["scheduler", "nodeimage_sync", HOST]) for _ in range(KILLS_PER_JOB - len(kinds))]
    return [(rng.uniform(0.3, 2.5), kind) for kind in kinds]


def host_to_kill(bed: FleetBed, reference: str, rng: random.Random) -> tuple[str, bool]:
    """A seeded choice among the hosts with a pull of `reference` in flight (any host when none); and whether it had."""
    hosts = bed.system.nodes
    pulling = sorted(h for h in hosts.hosts if any(hosts.journal(n).in_flight(reference) for n in hosts.nodes_of[h]))
    return rng.choice(pulling or sorted(hosts.hosts)), bool(pulling)


def control_plane_outage(bed: FleetBed, rng: random.Random) -> str:
    plane = bed.system.control
    kill_apiserver, kill_etcd = rng.random() < 0.5, rng.random() < 0.5
    plane.stop_apiserver(kill=kill_apiserver)
    plane.stop_etcd(kill=kill_etcd)
    time.sleep(OUTAGE_SECONDS)
    plane.start_etcd()
    plane.start_apiserver()
    return f"apiserver {'killed' if kill_apiserver else 'stopped'}, etcd {'killed' if kill_etcd else 'stopped'}"


@contextlib.contextmanager
def fault_file(path: Path) -> Iterator[None]:
    """The simulated runtime's fault named by `path` (see `localcluster.simruntime`), in force inside the block."""
    path.touch()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def node_to_stop(bed: FleetBed, reference: str, rng: random.Random) -> tuple[str, str]:
    """A seeded choice among the nodes pulling `reference` now, else among those yet to pull it; and which it was."""
    journals = {node: bed.system.nodes.journal(node) for node in sorted(bed.matching)}
    pulling = [node for node, journal in journals.items() if journal.in_flight(reference)]
    if pulling:
        return rng.choice(pulling), "mid-pull"
    waiting = [node for node, journal in journals.items() if reference not in journal.pulled()]
    return (rng.choice(waiting), "before its pull") if waiting else (rng.choice(sorted(journals)), "after its pull")


def failed_attempts(bed: FleetBed, job: Round) -> Counter[str]:
    """Failed pull attempts of the job's image per matching node, from the journals."""
    return Counter({node: bed.system.nodes.journal(node).failures()[job.reference] for node in sorted(bed.matching)})


# --- tests ---------------------------------------------------------------------------------------------------


@pytest.mark.timeout(3600)
def test_repeated_kills_within_one_job(bed: FleetBed, chaos_seed: int, chaos_rounds: int) -> None:
    rng = random.Random(chaos_seed)
    for round_number in range(chaos_rounds):
        run_kills_round(bed, rng, f"repeated kills round {round_number}, PREPULL_CHAOS_SEED={chaos_seed}")


def run_kills_round(bed: FleetBed, rng: random.Random, context: str) -> None:
    hosts = bed.system.nodes
    kills: Counter[str] = Counter()
    landed: list[str] = []
    with fresh_namespace(bed.system.api, "chaos") as namespace:
        job = start_job(bed, namespace, rng, context)
        for pause, kind in kill_schedule(rng):
            time.sleep(pause)
            running = not job_complete(bed.system.api, namespace, "chaos")
            target, mid_pull = host_to_kill(bed, job.reference, rng) if kind == HOST else (kind, False)
            kill_and_restart(bed, target, rng)
            kills.update(hosts.nodes_of.get(target, []))
            note = (" mid-pull" if mid_pull else "") + ("" if running else " (job already complete)")
            landed.append(f"+{pause:.1f}s {target}{note}")
        print(f"{context}: kills {', '.join(landed)}")
        assert_round(bed, job, extra_attempts=kills)


@pytest.mark.timeout(3600)
def test_control_plane_outage_during_a_job(bed: FleetBed, chaos_seed: int, chaos_rounds: int) -> None:
    rng = random.Random(chaos_seed)
    for round_number in range(chaos_rounds):
        context = f"control-plane outage round {round_number}, PREPULL_CHAOS_SEED={chaos_seed}"
        with fresh_namespace(bed.system.api, "chaos") as namespace:
            job = start_job(bed, namespace, rng, context)
            time.sleep(rng.uniform(0.5, 3.0))
            how = control_plane_outage(bed, rng)
            print(f"{context}: {how} for {OUTAGE_SECONDS:.0f}s")
            assert_round(bed, job, extra_attempts=Counter())


@pytest.mark.timeout(3600)
def test_node_deleted_and_nodes_added_during_a_job(bed: FleetBed, chaos_seed: int, chaos_rounds: int) -> None:
    rng = random.Random(chaos_seed)
    for round_number in range(chaos_rounds):
        run_churn_round(bed, rng, f"node churn round {round_number}, PREPULL_CHAOS_SEED={chaos_seed}")


def run_churn_round(bed: FleetBed, rng: random.Random, context: str) -> None:
    held, deleted = rng.sample(sorted(bed.matching), 2)
    suffix = f"{rng.getrandbits(24):06x}"
    added, unmatched = f"node-new-{suffix}", f"node-other-{suffix}"
    print(f"{context}: hold {held}, delete {deleted}, add {added} (matches) and {unmatched} (does not)")
    journal = bed.system.nodes.journal(held)
    journal.hold()
    try:
        with fresh_namespace(bed.system.api, "chaos") as namespace:
            job = start_job(bed, namespace, rng, context)
            time.sleep(rng.uniform(0.5, 4.0))
            churn_nodes(bed, deleted=deleted, added=added, unmatched=unmatched, label_index=rng.randrange(3))
            wait_until(
                lambda: new_node_given_the_image(bed, job, added, deleted),
                timeout=JOB_TIMEOUT,  # an earlier outage can leave the scheduler backing off for ~1 min
                interval=0.5,
                what=f"{context}: {added} given the image and {deleted}'s NodeImage gone",
            )
            assert not job_complete(bed.system.api, namespace, "chaos"), f"{context}: job ended while {held} held"
            journal.release()
            assert_round(bed, job, extra_attempts=Counter())
    finally:
        journal.release()


def churn_nodes(bed: FleetBed, *, deleted: str, added: str, unmatched: str, label_index: int) -> None:
    """Delete one Node; register two (one with the zone label the selector wants, one without) and their agents."""
    nodes.delete_node(bed.system.api, deleted)
    bed.matching.discard(deleted)
    labels = [cluster.default_labels(label_index), {"prepull.io/pool": "general"}]
    bed.system.nodes.register([added, unmatched], lambda index: labels[index])
    bed.matching.add(added)
    bed.others.add(unmatched)
    bed.system.nodes.start_hosts({f"host-{added}": [added, unmatched]})


def new_node_given_the_image(bed: FleetBed, job: Round, added: str, deleted: str) -> bool:
    name, tag = job.name_and_tag
    listed = {item["metadata"]["name"]: item for item in nodeimages(bed.system.api)}
    return deleted not in listed and added in listed and len(spec_entries(listed[added], name, tag)) == 1


@pytest.mark.timeout(3600)
def test_registry_errors_then_recovery_during_a_job(bed: FleetBed, chaos_seed: int, chaos_rounds: int) -> None:
    rng = random.Random(chaos_seed)
    for round_number in range(chaos_rounds):
        context = f"registry outage round {round_number}, PREPULL_CHAOS_SEED={chaos_seed}"
        with fresh_namespace(bed.system.api, "chaos") as namespace:
            job = start_job(bed, namespace, rng, context, backoff_limit=FAULT_BACKOFF_LIMIT)
            pause = rng.uniform(0.5, 3.0)
            time.sleep(pause)
            with fault_file(bed.system.nodes.journal_dir / ALL_NODES_FAIL):
                time.sleep(FAULT_SECONDS)
            failures = failed_attempts(bed, job)
            hit = +failures
            print(
                f"{context}: registry failing +{pause:.1f}s for {FAULT_SECONDS:.0f}s: {failures.total()} failed"
                f" attempts on {len(hit)} nodes, at most {max(hit.values(), default=0)} on one"
            )
            assert failures.total() > 0, f"{context}: the outage failed no pull (did the job end before it?)"
            assert_round(bed, job, extra_attempts=failures)
            assert max(failures.values()) <= FAULT_BACKOFF_LIMIT, f"{context}: more failures than retries: {failures}"


@pytest.mark.timeout(3600)
def test_containerd_stopped_mid_pull_and_restarted(bed: FleetBed, chaos_seed: int, chaos_rounds: int) -> None:
    rng = random.Random(chaos_seed)
    for round_number in range(chaos_rounds):
        context = f"containerd restart round {round_number}, PREPULL_CHAOS_SEED={chaos_seed}"
        with fresh_namespace(bed.system.api, "chaos") as namespace:
            job = start_job(bed, namespace, rng, context, backoff_limit=FAULT_BACKOFF_LIMIT)
            pause = rng.uniform(0.5, 3.0)
            time.sleep(pause)
            node, when = node_to_stop(bed, job.reference, rng)
            with fault_file(bed.system.nodes.journal(node).down_path):
                time.sleep(FAULT_SECONDS)
            cut = bed.system.nodes.journal(node).failures()[job.reference]
            print(f"{context}: {node}'s containerd stopped +{pause:.1f}s ({when}) for {FAULT_SECONDS:.0f}s, {cut} cut")
            assert_round(bed, job, extra_attempts=Counter({node: 1}))
            failures = +failed_attempts(bed, job)
            assert set(failures) <= {node}, f"{context}: only {node}'s runtime stopped, yet failures {failures}"


# --- what must hold after every round ------------------------------------------------------------------------


def assert_round(bed: FleetBed, job: Round, *, extra_attempts: Mapping[str, int]) -> None:
    """Everything the module docstring promises after a round; `extra_attempts`: pulls a fault may cost a node."""
    api = bed.system.api
    status = wait_for_completion(api, job.namespace, "chaos", timeout=JOB_TIMEOUT)
    want = len(bed.matching)
    counts = (status.get("desired"), status.get("succeeded"), status.get("failed"))
    assert counts == (want, want, 0), f"{job.context}: {status}"
    wait_until(lambda: no_tag_pulling(bed, job), timeout=RECOVERY_TIMEOUT, what=f"{job.context}: no tag Pulling")
    assert_nodeimages(bed, job)
    assert_pull_counts(bed, job, extra_attempts)
    wait_until(lambda: healthy(bed), timeout=RECOVERY_TIMEOUT, what=f"{job.context}: every service and host ready")


def no_tag_pulling(bed: FleetBed, job: Round) -> bool:
    name, tag = job.name_and_tag
    try:
        return not any("Pulling" in status_phases(item, name, tag) for item in nodeimages(bed.system.api))
    except API_ERRORS:
        return False


def assert_nodeimages(bed: FleetBed, job: Round) -> None:
    """One NodeImage per Node (none lost, none left over); one entry per matching node, Succeeded; none elsewhere."""
    name, tag = job.name_and_tag
    listed = nodeimages(bed.system.api)
    names = [item["metadata"]["name"] for item in listed]
    assert sorted(names) == sorted(bed.matching | bed.others), f"{job.context}: NodeImages {sorted(names)}"
    for item in listed:
        node = item["metadata"]["name"]
        entries, phases = spec_entries(item, name, tag), status_phases(item, name, tag)
        if node in bed.matching:
            assert (len(entries), phases) == (1, ["Succeeded"]), f"{job.context}: {node}: {entries} {phases}"
        else:
            assert (entries, phases) == ([], []), f"{job.context}: {node} is not a target: {entries} {phases}"


def assert_pull_counts(bed: FleetBed, job: Round, extra_attempts: Mapping[str, int]) -> None:
    """Each target pulled at least once and at most once plus once per kill of its puller; nobody else pulled."""
    hosts = bed.system.nodes
    for node in sorted(bed.matching):
        journal = hosts.journal(node)
        attempts = journal.attempts()[job.reference]
        allowed = 1 + extra_attempts.get(node, 0)
        assert 1 <= attempts <= allowed, f"{job.context}: {node} pulled {attempts} times, retries allow {allowed}"
        assert job.reference in journal.pulled(), f"{job.context}: {node} counted Succeeded but never pulled"
    for node in sorted(bed.others):
        attempts = hosts.journal(node).attempts()[job.reference]
        assert attempts == 0, f"{job.context}: {node} is not a target but pulled {attempts} times"


def healthy(bed: FleetBed) -> bool:
    try:
        services = all(s.process.alive() and s.ready() for s in bed.system.services.services.values())
    except OSError:
        return False
    return services and all(bed.system.nodes.ready(host) for host in bed.system.nodes.hosts)
