"""A rollout as serving nodes follow it, on a real Redis: the candidate serves its share of the
requests by a stable hash of the request id, the control serves the rest with the candidate's
shadow choice, share changes and the end of the rollout reach running clients, a new client picks
a running rollout up, and an implausible candidate is refused."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest

from learners import EpsilonGreedy
from learners.batch import Batch
from state import policy_control
from state.codec import PolicyRecord, Rollout
from state.policy_store import RedisPolicyStore
from state.serving_client import ServingClient, candidate_bucket

ARMS = ["a", "b", "c"]
N = 20_000


def greedy(campaign: str, best: str, version: int) -> PolicyRecord:
    """A policy that always picks ``best`` (ε = 0), with propensity 1."""
    learner = EpsilonGreedy(epsilon=0.0, seed=0)
    learner.update(
        Batch.from_rows([{"arm": a, "trials": 100, "reward_sum": 90 if a == best else 1} for a in ARMS])
    )
    params = learner.to_params() | {"version": version}
    return PolicyRecord.from_params(campaign, "creative", params, updated_at_ms=int(time.time() * 1000))


def _client(store: RedisPolicyStore) -> ServingClient:
    client = ServingClient(store, seed=0, poll_interval_s=0.05)
    assert client.start(wait_s=10)
    return client


def _wait(condition, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout_s}s for {what}"
        time.sleep(0.02)


def test_the_candidate_serves_its_share_by_request_id_and_the_control_logs_its_shadow(store):
    store.publish(greedy("c01", "a", 5))
    client = _client(store)
    try:
        assert client.wait_for_version("c01", "creative", 5, timeout_s=10)
        rollout = policy_control.start_rollout(store, greedy("c01", "c", 1), share=0.1, shadow=True)
        assert rollout.candidate.version == 6 and rollout.candidate.republished_from == 1
        # v6 is reserved: the control's params were published again as v7, above it
        assert (store.get("c01", "creative").version, store.get("c01", "creative").republished_from) == (7, 5)
        _wait(lambda: client.rollout("c01", "creative") == rollout, "the rollout")

        choices = [client.choose("c01", "creative", {}, ARMS, request_id=f"r{i}") for i in range(N)]
        candidate = [c for c in choices if c.rollout == "candidate"]
        control = [c for c in choices if c.rollout == "control"]
        # Binomial(N, 0.1): within 5 standard deviations.
        assert abs(len(candidate) - 0.1 * N) < 5 * math.sqrt(N * 0.1 * 0.9), len(candidate)
        assert len(candidate) + len(control) == N
        assert all((c.action, c.policy_version, c.shadow_action) == ("c", 6, None) for c in candidate)
        assert all((c.action, c.policy_version) == ("a", 7) for c in control)
        assert all((c.shadow_action, c.shadow_propensity) == ("c", 1.0) for c in control)
        # The split is the documented hash, stable across calls and nodes.
        for i, choice in enumerate(choices[:500]):
            in_share = candidate_bucket("c01", "creative", f"r{i}") < 0.1
            assert (choice.rollout == "candidate") == in_share
            assert client.choose("c01", "creative", {}, ARMS, request_id=f"r{i}").rollout == choice.rollout
        # No request id: the control serves.
        assert client.choose("c01", "creative", {}, ARMS).rollout == "control"

        # A new node picks the running rollout up at its first load.
        other = _client(store)
        try:
            assert other.rollout("c01", "creative") == rollout
            assert [
                other.choose("c01", "creative", {}, ARMS, request_id=f"r{i}").rollout for i in range(500)
            ] == [c.rollout for c in choices[:500]]
        finally:
            other.stop()

        policy_control.set_share(store, "c01", "creative", 0.5)
        _wait(lambda: client.rollout("c01", "creative").share == 0.5, "the new share")
        half = sum(
            client.choose("c01", "creative", {}, ARMS, request_id=f"r{i}").rollout == "candidate"
            for i in range(N)
        )
        assert abs(half - 0.5 * N) < 5 * math.sqrt(N * 0.25), half

        assert policy_control.end_rollout(store, "c01", "creative").candidate == rollout.candidate
        _wait(lambda: client.rollout("c01", "creative") is None, "the end of the rollout")
        after = client.choose("c01", "creative", {}, ARMS, request_id="r1")
        assert (after.action, after.rollout, after.shadow_action) == ("a", None, None)
        assert policy_control.end_rollout(store, "c01", "creative") is None
    finally:
        client.stop()


def test_without_shadow_the_control_logs_no_candidate_choice_and_share_0_is_shadow_only(store):
    store.publish(greedy("c02", "a", 3))
    client = _client(store)
    try:
        policy_control.start_rollout(store, greedy("c02", "b", 1), share=0.0, shadow=True)
        _wait(lambda: client.rollout("c02", "creative") is not None, "the rollout")
        choices = [client.choose("c02", "creative", {}, ARMS, request_id=f"r{i}") for i in range(2_000)]
        assert {(c.rollout, c.action, c.shadow_action) for c in choices} == {("control", "a", "b")}
        policy_control.start_rollout(store, greedy("c02", "b", 1), share=0.3, shadow=False)
        _wait(lambda: not client.rollout("c02", "creative").shadow, "shadow off")
        choices = [client.choose("c02", "creative", {}, ARMS, request_id=f"r{i}") for i in range(2_000)]
        assert {c.shadow_action for c in choices} == {None}
        assert {c.rollout for c in choices} == {"control", "candidate"}
    finally:
        client.stop()


def test_an_implausible_candidate_is_refused_and_the_control_serves(store):
    store.publish(greedy("c03", "a", 3))
    client = _client(store)
    try:
        good = greedy("c03", "b", 1)
        bad = dataclasses.replace(good, params={**good.params, "stats": [[1e300, 1.0]] * 3})
        rejected = client.stats().rejected_records
        store.set_rollout(Rollout(bad, 0.5, True))
        _wait(lambda: client.stats().rejected_records > rejected, "the refusal")
        assert client.rollout("c03", "creative") is None
        choice = client.choose("c03", "creative", {}, ARMS, request_id="r1")
        assert (choice.action, choice.rollout) == ("a", None)
        with pytest.raises(ValueError, match="share must be a number in"):
            Rollout(bad, 1.5, False)
    finally:
        client.stop()
