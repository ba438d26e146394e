"""The rollout controller on a real Redis: a bad candidate is rolled back (the rollout ends, the
control is republished naming it), a good one promoted (its params become the control's and the
learners must adopt them), a drift freezes promotion, extends are audited at most every interval;
a following serving client never sees a version go down."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rollout.controller import ControllerSettings, RolloutController
from rollout.sequential import ArmTotals
from state import policy_control
from state.serving_client import ServingClient
from tests.integration.test_policy_store import ts_record
from tests.integration.test_rollout_serving import greedy


def _batch(rng, rate: float, n: int) -> ArmTotals:
    clicks = float(rng.binomial(n, rate))
    return ArmTotals(n, clicks, clicks, clicks)


def _run(controller, rollout, rng, rates, *, drifted=False, limit=5_000, start_ms=0):
    """Micro-batches of 900 control and 100 candidate decisions until a decision; the audits."""
    audits = []
    for i in range(limit):
        audit = controller.observe(
            rollout,
            control=_batch(rng, rates[0], 900),
            candidate=_batch(rng, rates[1], 100),
            drifted=drifted,
            now_ms=start_ms + i * 1_000,
        )
        if audit is not None:
            audits.append(audit)
            if audit.decision != "extend":
                break
    return audits


def test_a_bad_candidate_is_rolled_back_and_subscribers_go_back_to_the_control(store):
    store.publish(greedy("c01", "a", 7))
    client = ServingClient(store, seed=0, poll_interval_s=0.05)
    assert client.start(wait_s=10)
    try:
        rollout = policy_control.start_rollout(store, greedy("c01", "c", 1), share=0.1, shadow=False)
        controller = RolloutController(store, ControllerSettings(audit_interval_ms=60_000))
        audits = _run(controller, rollout, np.random.default_rng(1), (0.04, 0.01))
        final = audits[-1]
        assert final.decision == "rollback", final
        assert final.candidate_version == 8 and final.control_version == 9  # v7 again, above v8
        assert (
            final.margin_high is not None
            and final.margin_high < 0
            and final.candidate_mean < final.control_mean
        )
        # extends were audited once a minute of the batches' clock, not at every batch
        assert all(
            b.decided_at_ms - a.decided_at_ms >= 60_000 for a, b in zip(audits, audits[1:-1], strict=False)
        )
        assert store.get_rollout("c01", "creative") is None
        republished = store.get("c01", "creative")
        assert (republished.version, republished.republished_from, republished.rolled_back_from) == (10, 9, 8)
        assert republished.params == {**greedy("c01", "a", 7).params, "version": 10}
        assert final.new_version == 10 and store.holds("c01", "creative") == {}
        deadline = time.monotonic() + 10
        while client.rollout("c01", "creative") is not None or client.version("c01", "creative") < 10:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.choose("c01", "creative", {}, ["a", "b", "c"], request_id="r1").action == "a"
        seen = client.versions_seen("c01", "creative")
        assert list(seen) == sorted(set(seen)), seen
    finally:
        client.stop()


def test_a_good_candidate_is_promoted_and_the_learners_must_adopt_it(store):
    store.publish(greedy("c02", "a", 4))
    rollout = policy_control.start_rollout(store, greedy("c02", "b", 2), share=0.1, shadow=True)
    controller = RolloutController(store)
    audit = _run(controller, rollout, np.random.default_rng(2), (0.03, 0.06))[-1]
    assert audit is not None and audit.decision == "promote" and audit.diff_low > 0
    promoted = store.get("c02", "creative")
    assert promoted.republished_from == rollout.candidate.version and promoted.rolled_back_from is None
    assert promoted.params == {**rollout.candidate.params, "version": promoted.version}
    assert store.holds("c02", "creative") == {"adopt": promoted.version}
    assert store.write(greedy("c02", "a", promoted.version + 5)).status == "adopt"
    assert store.get_rollout("c02", "creative") is None


def test_a_rollout_an_operator_ended_meanwhile_is_left_alone_and_a_pin_freezes_promotion(store):
    store.publish(greedy("c04", "a", 4))
    rollout = policy_control.start_rollout(store, greedy("c04", "b", 2), share=0.1, shadow=False)
    controller = RolloutController(store, ControllerSettings(audit_interval_ms=10**9))
    policy_control.end_rollout(store, "c04", "creative")
    replaced = policy_control.start_rollout(store, greedy("c04", "c", 2), share=0.2, shadow=False)
    audit = _run(controller, rollout, np.random.default_rng(3), (0.04, 0.005))[-1]
    assert audit.decision == "superseded" and audit.new_version is None
    assert store.get_rollout("c04", "creative") == replaced  # the operator's new rollout stands
    policy_control.pin(store, store.get("c04", "creative"))
    pinned = RolloutController(store, ControllerSettings(audit_interval_ms=0))
    audits = _run(pinned, replaced, np.random.default_rng(4), (0.03, 0.06), limit=400)
    assert {a.decision for a in audits} == {"extend"} and audits[-1].frozen
    with pytest.raises(ValueError, match="expected params of the control's learner 'EpsilonGreedy'"):
        policy_control.start_rollout(store, ts_record("c04", "creative", 1), share=0.1, shadow=False)


def test_a_drift_freezes_promotion(store):
    store.publish(greedy("c03", "a", 4))
    rollout = policy_control.start_rollout(store, greedy("c03", "b", 2), share=0.1, shadow=False)
    controller = RolloutController(store, ControllerSettings(audit_interval_ms=0))
    audits = _run(controller, rollout, np.random.default_rng(2), (0.03, 0.06), drifted=True, limit=400)
    assert {a.decision for a in audits} == {"extend"}
    assert audits[-1].frozen and audits[-1].diff_low > 0  # it would have been promoted
    assert store.get_rollout("c03", "creative") is not None
