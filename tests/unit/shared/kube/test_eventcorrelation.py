"""Event volume stays bounded: repeats aggregate into a count, writes are rate-limited per object and in total."""

from __future__ import annotations

import pytest

from services.shared.kube import eventcorrelation as ec
from services.shared.kube import ratelimit

CREATE, UPDATE, DROP = ec.Action.CREATE, ec.Action.UPDATE, ec.Action.DROP


def ref(name: str = "node-1") -> ec.ObjectRef:
    return ec.ObjectRef(api_version="prepull.io/v1beta1", kind="NodeImage", namespace="", name=name, uid=f"uid-{name}")


def occurrence(message: str = "pulled", name: str = "node-1", reason: str = "Pulled") -> ec.Occurrence:
    return ec.Occurrence(ref(name), "Normal", reason, message)


def limits(**overrides) -> ec.EventLimits:
    generous = {"burst_per_object": 1000, "refill_per_object": 0.0, "burst_total": 1000, "refill_total": 0.0}
    return ec.EventLimits(**(generous | overrides))


def record(correlator: ec.EventCorrelator, occ: ec.Occurrence, now: float = 0.0) -> ec.Decision:
    """What the recorder does: observe, and after a CREATE remember the Event's name."""
    decision = correlator.observe(occ, now)
    if decision.action is CREATE:
        correlator.created(occ, f"event-{occ.message}")
    return decision


def test_repeats_update_the_count_of_one_event():
    correlator = ec.EventCorrelator(limits(), now=0.0)
    decisions = [record(correlator, occurrence()) for _ in range(4)]
    assert decisions == [
        ec.Decision(CREATE),
        ec.Decision(UPDATE, name="event-pulled", count=2),
        ec.Decision(UPDATE, name="event-pulled", count=3),
        ec.Decision(UPDATE, name="event-pulled", count=4),
    ]


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(occurrence(message="failed"), id="other-message"),
        pytest.param(occurrence(reason="Failed"), id="other-reason"),
        pytest.param(occurrence(name="node-2"), id="other-object"),
        pytest.param(ec.Occurrence(ref(), "Warning", "Pulled", "pulled"), id="other-type"),
    ],
)
def test_anything_different_is_a_new_event(other):
    correlator = ec.EventCorrelator(limits(), now=0.0)
    record(correlator, occurrence())
    assert record(correlator, other).action is CREATE


def test_per_object_burst_then_drop_then_refill():
    correlator = ec.EventCorrelator(limits(burst_per_object=3, refill_per_object=0.1), now=0.0)
    actions = [record(correlator, occurrence(message=str(i)), now=0.0).action for i in range(5)]
    assert actions == [CREATE, CREATE, CREATE, DROP, DROP]
    assert record(correlator, occurrence(message="later"), now=9.9).action is DROP
    assert record(correlator, occurrence(message="later"), now=10.0).action is CREATE


def test_one_noisy_object_does_not_silence_another():
    correlator = ec.EventCorrelator(limits(burst_per_object=2), now=0.0)
    for i in range(10):
        record(correlator, occurrence(message=str(i), name="noisy"))
    assert record(correlator, occurrence(name="quiet")).action is CREATE


def test_the_total_bucket_bounds_all_objects_together():
    correlator = ec.EventCorrelator(limits(burst_total=5), now=0.0)
    actions = [record(correlator, occurrence(name=f"node-{i}")).action for i in range(8)]
    assert actions.count(CREATE) == 5
    assert actions[5:] == [DROP, DROP, DROP]


def test_a_dropped_repeat_still_counts_towards_the_next_update():
    correlator = ec.EventCorrelator(limits(burst_per_object=2, refill_per_object=1.0), now=0.0)
    assert record(correlator, occurrence(), now=0.0).action is CREATE
    assert record(correlator, occurrence(), now=0.0) == ec.Decision(UPDATE, name="event-pulled", count=2)
    assert record(correlator, occurrence(), now=0.0).action is DROP
    assert record(correlator, occurrence(), now=0.0).action is DROP
    assert record(correlator, occurrence(), now=1.0) == ec.Decision(UPDATE, name="event-pulled", count=5)


def test_a_dropped_first_occurrence_is_not_remembered():
    correlator = ec.EventCorrelator(limits(burst_per_object=1, refill_per_object=1.0), now=0.0)
    record(correlator, occurrence(message="first"))
    assert record(correlator, occurrence(message="second"), now=0.0).action is DROP
    assert record(correlator, occurrence(message="second"), now=1.0).action is CREATE


def test_forget_makes_the_next_repeat_create_anew():
    correlator = ec.EventCorrelator(limits(), now=0.0)
    record(correlator, occurrence())
    correlator.forget(occurrence())
    assert record(correlator, occurrence()).action is CREATE


def test_the_aggregation_cache_is_bounded():
    correlator = ec.EventCorrelator(limits(cache_size=2), now=0.0)
    for message in ["a", "b", "c"]:
        record(correlator, occurrence(message=message))
    assert record(correlator, occurrence(message="a")).action is CREATE  # least recently used: forgotten
    assert record(correlator, occurrence(message="c")).action is UPDATE


def test_token_bucket_refills_up_to_its_burst():
    bucket = ratelimit.TokenBucket(burst=2, per_second=1.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.available(100.0) == 2.0
    assert bucket.take(0.5) is True  # time going backwards does not refill or break anything


def test_token_bucket_rejects_nonsense():
    with pytest.raises(ValueError, match="burst"):
        ratelimit.TokenBucket(burst=0, per_second=1.0, now=0.0)
