"""The ImagePullJob controller against the real apiserver (upstream §2; NodeImage statuses written by the test)."""

from __future__ import annotations

import pytest

from localcluster.controlplane import ControlPlane
from localcluster.process import wait_until
from services.shared.api import constants
from services.shared.kube import objects, resources
from tests.integration.scheduler import helpers
from tests.support.scheduler_harness import SchedulerHarness

pytestmark = pytest.mark.integration

IMAGE, TAG = "nginx", "1.25"
TIMEOUT = helpers.TIMEOUT


def test_parallelism_is_never_exceeded_and_the_job_completes_with_counts(harness: SchedulerHarness) -> None:
    kube = harness.kube
    nodes = harness.nodes(5)
    harness.start()
    harness.create_job("j", {"image": "nginx:1.25", "parallelism": 2, "selector": harness.selector})
    finished: list[str] = []
    max_seen = 0
    while len(finished) < len(nodes):

        def active_nodes() -> list[str]:
            return [n for n in nodes if n not in finished and helpers.is_active(kube, n, IMAGE, TAG)]

        expected = min(2, len(nodes) - len(finished))
        wait_until(
            lambda wanted=expected: len(active_nodes()) >= wanted,  # type: ignore[misc]
            timeout=TIMEOUT,
            what=f"{expected} nodes started",
        )
        for _ in range(5):  # sample a few times: a third node must never appear
            current = active_nodes()
            max_seen = max(max_seen, len(current))
            assert len(current) <= 2, f"parallelism 2 exceeded: {current}"
        node = active_nodes()[0]
        phase = "Failed" if node == nodes[-1] else "Succeeded"
        helpers.report(kube, node, IMAGE, TAG, phase, message="manifest unknown" if phase == "Failed" else "")
        finished.append(node)
    assert max_seen == 2
    assert finished[:2] == nodes[:2] or sorted(finished[:2]) == nodes[:2]  # taken in name order

    harness.wait_job_completed("j", what="job completion")
    job = harness.job("j")
    status = job["status"]
    assert (status["desired"], status["succeeded"], status["failed"], status["active"]) == (5, 4, 1, 0)
    assert status["failedNodes"] == [nodes[-1]]
    assert status["nodeFailures"][0]["message"] == "manifest unknown"
    assert status["message"] == "job has completed"
    assert status["observedGeneration"] == job["metadata"]["generation"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Complete": "True", "Failed": "True", "Progressing": "False"}
    assert constants.ANNOTATION_TRACE_CONTEXT in job["metadata"]["annotations"]
    wait_until(
        lambda: constants.JOB_FINALIZER not in (harness.job("j")["metadata"].get("finalizers") or ()),
        timeout=TIMEOUT,
        what="finalizer removed after completion",
    )
    entry = helpers.tag_entry(kube, nodes[0], IMAGE, TAG)
    assert entry is not None
    assert entry["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert entry["traceContexts"][0]["uid"] == job["metadata"]["uid"]
    assert entry["pullPolicy"]["timeoutSeconds"] == 600


def test_always_job_matching_nothing_completes_at_once_and_ttl_deletes_it(harness: SchedulerHarness) -> None:
    harness.start()
    harness.create_job(
        "empty",
        {
            "image": "nginx:1.25",
            "selector": harness.selector,
            "completionPolicy": {"ttlSecondsAfterFinished": 2},
        },
    )
    harness.wait_none_left(resources.IMAGE_PULL_JOBS, what="job deleted by its TTL")


def test_deadline_fails_pulling_and_unsynced_nodes(harness: SchedulerHarness) -> None:
    kube = harness.kube
    nodes = harness.nodes(3)
    harness.start()
    harness.create_job(
        "d",
        {
            "image": "nginx:1.25",
            "selector": harness.selector,
            "pullPolicy": {"timeoutSeconds": 1},
            "completionPolicy": {"activeDeadlineSeconds": 4},
        },
    )
    wait_until(lambda: helpers.is_active(kube, nodes[0], IMAGE, TAG), timeout=TIMEOUT, what="first node started")
    harness.wait_job_completed("d", what="deadline")
    status = harness.job_status("d")
    assert status["message"] == "job exceeds activeDeadlineSeconds"
    assert (status["desired"], status["succeeded"], status["failed"], status["active"]) == (3, 0, 3, 0)
    assert sorted(status["failedNodes"]) == nodes
    assert all(f["reason"] == "DeadlineExceeded" and f["message"] for f in status["nodeFailures"])
    assert helpers.tag_entry(kube, nodes[1], IMAGE, TAG) is None  # never started


def test_never_job_serves_a_node_added_later_and_repulls_after_the_tag_expires(harness: SchedulerHarness) -> None:
    kube = harness.kube
    first = harness.node()
    harness.start()
    harness.create_job(
        "n",
        {"image": "nginx:1.25", "selector": harness.selector, "completionPolicy": {"type": "Never"}},
    )
    wait_until(lambda: helpers.tag_entry(kube, first, IMAGE, TAG) is not None, timeout=TIMEOUT, what="first node")
    entry = helpers.tag_entry(kube, first, IMAGE, TAG)
    assert entry is not None
    assert 86400 - 600 <= entry["pullPolicy"]["ttlSecondsAfterFinished"] < 86400 + 600
    helpers.report(kube, first, IMAGE, TAG, "Succeeded")
    wait_until(lambda: harness.job_status("n").get("succeeded") == 1, timeout=TIMEOUT, what="counted")
    later = harness.node()
    wait_until(lambda: helpers.tag_entry(kube, later, IMAGE, TAG) is not None, timeout=TIMEOUT, what="new node")
    helpers.report(kube, later, IMAGE, TAG, "Succeeded")
    wait_until(lambda: harness.job_status("n").get("succeeded") == 2, timeout=TIMEOUT, what="both")
    status = harness.job_status("n")
    assert status.get("completionTime") is None
    assert status["message"] == "job is running, progress 100.0%"

    helpers.remove_tag_entry(kube, first, IMAGE, TAG)  # what nodeimage_sync does ~24 h after the pull
    wait_until(lambda: helpers.tag_entry(kube, first, IMAGE, TAG) is not None, timeout=TIMEOUT, what="re-pull")
    again = helpers.tag_entry(kube, first, IMAGE, TAG)
    assert again is not None and again["version"] == 1  # old status version 0 + 1: the node pulls again


def test_pod_selector_follows_a_pod_to_another_node(harness: SchedulerHarness) -> None:
    kube = harness.kube
    first, second = harness.node(labelled=False), harness.node(labelled=False)
    harness.start()
    _create_pod(kube, harness.namespace, "web-1", first, {"app": "web"})
    harness.create_job("p", {"image": "nginx:1.25", "podSelector": {"matchLabels": {"app": "web"}}})
    wait_until(lambda: helpers.tag_entry(kube, first, IMAGE, TAG) is not None, timeout=TIMEOUT, what="first node")
    _create_pod(kube, harness.namespace, "web-2", second, {"app": "web"})
    wait_until(lambda: harness.job_status("p").get("desired") == 2, timeout=TIMEOUT, what="2 targets")
    assert helpers.tag_entry(kube, second, IMAGE, TAG) is None  # parallelism 1: waits for the first node
    kube.delete(resources.PODS, "web-1", namespace=harness.namespace)
    wait_until(lambda: helpers.tag_entry(kube, second, IMAGE, TAG) is not None, timeout=TIMEOUT, what="second node")
    wait_until(
        lambda: harness.job_status("p").get("desired") == 1 and harness.job_status("p").get("active") == 1,
        timeout=TIMEOUT,
        what="job follows the pod",
    )


def test_finished_job_is_frozen(harness: SchedulerHarness) -> None:
    kube = harness.kube
    node = harness.node()
    app = harness.start()
    harness.create_job("f", {"image": "nginx:1.25", "selector": harness.selector})
    wait_until(lambda: helpers.tag_entry(kube, node, IMAGE, TAG) is not None, timeout=TIMEOUT, what="started")
    helpers.report(kube, node, IMAGE, TAG, "Succeeded")
    harness.wait_job_completed("f", what="completion")
    frozen = harness.job_status("f")
    later = harness.node()
    job = harness.job("f")
    before = app.job_reconciler.reconcile_counts[f"{harness.namespace}/f"]
    kube.patch(resources.IMAGE_PULL_JOBS, "f", {"spec": {"parallelism": 5}}, namespace=harness.namespace)
    wait_until(
        lambda: app.job_reconciler.reconcile_counts[f"{harness.namespace}/f"] > before,
        timeout=TIMEOUT,
        what="the edit to be seen",
    )
    assert helpers.tag_entry(kube, later, IMAGE, TAG) is None
    assert harness.job_status("f") == frozen
    assert harness.job("f")["metadata"]["generation"] == job["metadata"]["generation"] + 1


def test_scheduler_restart_mid_job_still_completes(harness: SchedulerHarness) -> None:
    kube = harness.kube
    nodes = harness.nodes(2)
    first = harness.start()
    harness.create_job("r", {"image": "nginx:1.25", "selector": harness.selector})
    wait_until(lambda: helpers.is_active(kube, nodes[0], IMAGE, TAG), timeout=TIMEOUT, what="first node")
    first.stop()
    helpers.report(kube, nodes[0], IMAGE, TAG, "Succeeded")
    harness.start()
    wait_until(lambda: helpers.is_active(kube, nodes[1], IMAGE, TAG), timeout=TIMEOUT, what="second node")
    helpers.report(kube, nodes[1], IMAGE, TAG, "Succeeded")
    harness.wait_job_completed("r", what="completion after restart")
    status = harness.job_status("r")
    assert (status["desired"], status["succeeded"], status["failed"]) == (2, 2, 0)


def _create_pod(kube: objects.ObjectApi, namespace: str, name: str, node: str, labels: dict[str, str]) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx:1.25"}]},
    }
    kube.create(resources.PODS, body, namespace=namespace)


def test_second_job_joining_a_tag_bumps_the_version_and_its_pull_policy_reaches_the_tag(
    harness: SchedulerHarness,
) -> None:
    kube = harness.kube
    node = harness.node()
    harness.start()
    selector = harness.selector
    harness.create_job("one", {"image": "nginx:1.25", "selector": selector})
    wait_until(lambda: helpers.tag_entry(kube, node, IMAGE, TAG) is not None, timeout=TIMEOUT, what="first job")
    helpers.report(kube, node, IMAGE, TAG, "Succeeded")
    harness.create_job(
        "two",
        {"image": "docker.io/library/nginx:1.25", "selector": selector, "pullPolicy": {"timeoutSeconds": 900}},
    )

    def joined() -> bool:
        entry = helpers.tag_entry(kube, node, IMAGE, TAG)
        return entry is not None and len(entry.get("ownerReferences") or ()) == 2

    wait_until(joined, timeout=TIMEOUT, what="second owner")
    entry = helpers.tag_entry(kube, node, IMAGE, TAG)
    assert entry is not None
    assert entry["version"] == 1
    assert entry["pullPolicy"]["timeoutSeconds"] == 900  # the most generous owner's (design §5)
    assert {t["uid"] for t in entry["traceContexts"]} == {o["uid"] for o in entry["ownerReferences"]}
    # The first job's Succeeded was for version 0: it counts as active again until the node reports version 1.
    wait_until(lambda: harness.job_status("two").get("active") == 1, timeout=TIMEOUT, what="two active")
    helpers.report(kube, node, IMAGE, TAG, "Succeeded")
    harness.wait_job_completed("two", what="second job completes")


def test_missing_pull_secret_and_deadline_are_reported_as_events(harness: SchedulerHarness) -> None:
    kube = harness.kube
    harness.node()
    harness.start()
    harness.create_job(
        "s",
        {
            "image": "nginx:1.25",
            "pullSecrets": ["absent"],
            "selector": harness.selector,
            "pullPolicy": {"timeoutSeconds": 1},
            "completionPolicy": {"activeDeadlineSeconds": 2},
        },
    )

    def reasons() -> set[str]:
        items = kube.list(resources.EVENTS, namespace=harness.namespace).items
        return {e.get("reason", "") for e in items if e.get("involvedObject", {}).get("name") == "s"}

    wait_until(lambda: {"PullSecretNotFound", "DeadlineExceeded"} <= reasons(), timeout=TIMEOUT, what="events")
    messages = [e.get("message", "") for e in kube.list(resources.EVENTS, namespace=harness.namespace).items]
    assert any(f"{harness.namespace}/absent does not exist" in m for m in messages)


def test_apiserver_restart_mid_job_still_completes_with_correct_counts(
    control_plane: ControlPlane, harness: SchedulerHarness
) -> None:
    kube = harness.kube
    nodes = harness.nodes(3)
    harness.start()
    harness.create_job("a", {"image": "nginx:1.25", "selector": harness.selector})
    wait_until(lambda: helpers.is_active(kube, nodes[0], IMAGE, TAG), timeout=TIMEOUT, what="first node")
    control_plane.restart_apiserver()
    for node in nodes:
        wait_until(lambda n=node: helpers.is_active(kube, n, IMAGE, TAG), timeout=120, what=f"{node} started")  # type: ignore[misc]
        helpers.report(kube, node, IMAGE, TAG, "Succeeded")
    harness.wait_job_completed("a", what="completion after the apiserver restart", timeout=120)
    status = harness.job_status("a")
    assert (status["desired"], status["succeeded"], status["failed"], status["active"]) == (3, 3, 0, 0)


def test_edited_pull_policy_reaches_a_started_node_without_a_new_round(harness: SchedulerHarness) -> None:
    kube = harness.kube
    node = harness.node()
    harness.start()
    harness.create_job("e", {"image": "nginx:1.25", "selector": harness.selector})
    wait_until(lambda: helpers.tag_entry(kube, node, IMAGE, TAG) is not None, timeout=TIMEOUT, what="started")
    kube.patch(
        resources.IMAGE_PULL_JOBS,
        "e",
        {"spec": {"pullPolicy": {"timeoutSeconds": 1200, "backoffLimit": 5}}},
        namespace=harness.namespace,
    )

    def updated() -> bool:
        entry = helpers.tag_entry(kube, node, IMAGE, TAG) or {}
        return bool(entry.get("pullPolicy", {}).get("timeoutSeconds") == 1200)

    wait_until(updated, timeout=TIMEOUT, what="the new timeout on the tag entry")
    entry = helpers.tag_entry(kube, node, IMAGE, TAG)
    assert entry is not None
    assert entry["pullPolicy"]["backoffLimit"] == 5
    assert entry.get("version", 0) == 0  # no new pull round (0 is omitted, as Go omits it)


def test_nodes_join_by_label_and_leave_by_deletion_mid_job(harness: SchedulerHarness) -> None:
    kube = harness.kube
    first = harness.node()
    unlabelled = harness.node(labelled=False)
    leaving = harness.node()
    harness.start()
    harness.create_job(
        "m",
        {"image": "nginx:1.25", "parallelism": 0, "selector": harness.selector},  # paused: nothing starts
    )
    wait_until(lambda: harness.job_status("m").get("desired") == 2, timeout=TIMEOUT, what="2")
    assert helpers.tag_entry(kube, first, IMAGE, TAG) is None  # parallelism 0 pauses the job
    kube.patch(resources.NODE_IMAGES, unlabelled, {"metadata": {"labels": harness.label}})
    wait_until(lambda: harness.job_status("m").get("desired") == 3, timeout=TIMEOUT, what="3")
    kube.delete(resources.NODE_IMAGES, leaving)
    wait_until(lambda: harness.job_status("m").get("desired") == 2, timeout=TIMEOUT, what="2")
    kube.patch(resources.IMAGE_PULL_JOBS, "m", {"spec": {"parallelism": 5}}, namespace=harness.namespace)
    for node in (first, unlabelled):
        wait_until(lambda n=node: helpers.tag_entry(kube, n, IMAGE, TAG) is not None, timeout=TIMEOUT, what=node)  # type: ignore[misc]
        helpers.report(kube, node, IMAGE, TAG, "Succeeded")
    harness.wait_job_completed("m", what="done")
    assert harness.job_status("m")["succeeded"] == 2


def test_cluster_wide_cap_on_pulls_in_flight_holds_across_jobs(harness: SchedulerHarness) -> None:
    kube = harness.kube
    nodes = harness.nodes(2)
    harness.start(max_pulls_in_flight=1)
    images = {"a": ("nginx", "1.25"), "b": ("busybox", "1.36")}
    for name, (image, tag) in images.items():
        spec = {"image": f"{image}:{tag}", "parallelism": 3, "selector": harness.selector}
        harness.create_job(name, spec)
    pairs = [(node, image, tag) for node in nodes for image, tag in images.values()]
    done: set[tuple[str, str, str]] = set()
    while len(done) < len(pairs):

        def in_flight() -> list[tuple[str, str, str]]:
            return [p for p in pairs if p not in done and helpers.is_active(kube, *p)]

        wait_until(lambda: bool(in_flight()), timeout=TIMEOUT, what="a pull to start")
        for _ in range(5):
            assert len(in_flight()) <= 1, f"cap of 1 exceeded: {in_flight()}"
        pair = in_flight()[0]
        helpers.report(kube, *pair, "Succeeded")
        done.add(pair)
    for name in images:
        harness.wait_job_completed(name, what=f"job {name} completes")
