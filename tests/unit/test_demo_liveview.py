"""The demo's live view and outcome judges: what a user sees while the jobs run, and when the demo says done."""

from __future__ import annotations

import io
from typing import Any

from localcluster import demo, liveview

STATE: dict[str, Any] = {
    "nodes": [
        {"name": "node-1", "labels": {"prepull.io/pool": "general"}},
        {"name": "node-2", "labels": {"prepull.io/pool": "gpu"}},
        {"name": "node-3", "labels": {"prepull.io/pool": "general"}},
    ]
}


def job(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def node_image(node: str, image: str, tags: list[dict[str, Any]], requested: tuple[str, ...] = ()) -> dict[str, Any]:
    spec_tags = [{"tag": tag} for tag in requested]
    return {
        "metadata": {"name": node},
        "spec": {"images": {image: {"tags": spec_tags}}},
        "status": {"imageStatuses": {image: {"tags": tags}}},
    }


def test_job_rows_show_counters_and_state_and_list_job_failures_are_children() -> None:
    rows = liveview.job_rows(
        [job("big", desired=2, active=1, succeeded=1, failed=0)],
        [job("list", desired=2, completed=2, succeeded=1, completionTime="t")],
    )
    texts = [row.text.split() for row in rows]
    assert texts[1] == ["ipj/big", "2", "1", "1", "0", "running"]
    assert texts[2] == ["ilpj/list", "2", "0", "1", "1", "complete"]


def test_node_rows_show_byte_progress_waiting_tags_and_hide_other_images() -> None:
    pulling = {"tag": "1.0", "phase": "Pulling", "pulledBytes": 12 * 2**20, "totalBytes": 48 * 2**20}
    images = [
        node_image("node-1", "127.0.0.1:5000/demo/big", [pulling], requested=("1.0", "2.0")),
        node_image("node-2", "example.com/other", [{"tag": "x", "phase": "Succeeded", "progress": 100}]),
    ]
    rows = liveview.node_rows(images, shown=("demo/",))
    texts = [row.text.split() for row in rows[1:]]
    assert texts == [["node-1", "demo/big:1.0", "Pulling", "12.0/48.0", "MiB"], ["node-1", "demo/big:2.0", "Waiting"]]


def test_without_a_terminal_only_changed_rows_are_printed() -> None:
    out = io.StringIO()
    view = liveview.LiveView(out=out, interactive=False)
    view.show([liveview.Row("a", "a 1"), liveview.Row("b", "b 1")])
    view.show([liveview.Row("a", "a 1"), liveview.Row("b", "b 2")])
    lines = out.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["a 1", "b 1", "b 2"]
    assert "\x1b" not in out.getvalue()


def test_on_a_terminal_the_table_is_redrawn_in_place() -> None:
    out = io.StringIO()
    view = liveview.LiveView(out=out, interactive=True)
    view.show([liveview.Row("a", "one")], footer="waiting")
    view.show([liveview.Row("a", "two")])
    assert out.getvalue() == "one\nwaiting\n\x1b[2F\x1b[Jtwo\n"


def test_outcomes_are_pending_until_reached_and_missed_when_a_completed_job_failed_nodes() -> None:
    outcomes = {outcome.name: outcome for outcome in demo.expected_outcomes(STATE)}
    selector = outcomes["ipj/big-model-on-general"]
    never = outcomes["ipj/hello-everywhere"]
    listed = outcomes["ilpj/private-images"]
    seed = outcomes["nodeimage/node-2 ubuntu:latest"]
    nothing = demo.Observed()
    assert {o.judge(nothing)[0] for o in outcomes.values()} == {demo.Verdict.PENDING}

    done = demo.Observed(
        image_pull_jobs={
            "big-model-on-general": job("big-model-on-general", desired=2, succeeded=2, failed=0, completionTime="t"),
            "hello-everywhere": job("hello-everywhere", desired=3, succeeded=3, failed=0),
        },
        list_jobs={"private-images": job("private-images", desired=2, completed=2, succeeded=2, completionTime="t")},
        node_images={"node-2": node_image("node-2", "ubuntu", [{"tag": "latest", "phase": "Succeeded"}])},
    )
    assert {o.judge(done)[0] for o in outcomes.values()} == {demo.Verdict.MET}

    failed = demo.Observed(
        image_pull_jobs={
            "big-model-on-general": job("big-model-on-general", desired=2, succeeded=1, failed=1, completionTime="t")
        },
        list_jobs={"private-images": job("private-images", desired=2, completed=2, succeeded=1, completionTime="t")},
    )
    assert selector.judge(failed)[0] is demo.Verdict.MISSED
    assert listed.judge(failed)[0] is demo.Verdict.MISSED
    assert never.judge(failed)[0] is demo.Verdict.PENDING
    assert seed.judge(failed)[0] is demo.Verdict.PENDING
