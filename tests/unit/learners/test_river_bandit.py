"""The River adapter against River's own policies fed event by event: same statistics, same choices."""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import pytest
from river import bandit, proba

from learners import RiverBandit, from_params
from learners.batch import Batch

ARMS = ["cr0", "cr1", "cr2", "cr3"]
CTR = {"cr0": 0.05, "cr1": 0.12, "cr2": 0.08, "cr3": 0.02}
SEED = 1234


def _events(n: int, seed: int) -> list[dict]:
    """Binary rewards of a logging policy that tries every arm, in a random order."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        arm = rng.choice(ARMS)
        out.append({"arm": arm, "reward": float(rng.random() < CTR[arm]), "propensity": 0.25})
    return out


def _river(policy: str, seed: int) -> bandit.base.Policy:
    if policy == "EpsilonGreedy":
        return bandit.EpsilonGreedy(0.2, decay=0.001, seed=seed)
    if policy == "UCB":
        return bandit.UCB(delta=1.0, seed=seed)
    if policy == "BayesUCB":
        return bandit.BayesUCB(seed=seed)
    if policy == "RandomPolicy":
        return bandit.RandomPolicy(seed=seed)
    return bandit.ThompsonSampling(reward_obj=proba.Beta(1, 1), seed=seed)


def _adapter(policy: str) -> RiverBandit:
    args = {"EpsilonGreedy": {"epsilon": 0.2, "decay": 0.001}, "UCB": {"delta": 1.0}}.get(policy, {})
    return RiverBandit(policy, **args, seed=5)


def _statistics(policy: bandit.base.Policy) -> dict:
    out = {}
    for arm, posterior in getattr(policy, "_posteriors", {}).items():  # BayesUCB's
        out[f"posterior:{arm}"] = (posterior.alpha, posterior.beta)
    for arm, reward in policy._rewards.items():
        if isinstance(reward, proba.Beta):
            out[arm] = (reward.alpha, reward.beta, policy._counts[arm])
        else:
            out[arm] = (reward.get(), reward.n, policy._counts[arm])
    return out | {"_n": policy._n}


def _close(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = (a[key], b[key]) if isinstance(a[key], tuple) else ((a[key],), (b[key],))
        if not all(math.isclose(u, v, rel_tol=1e-12, abs_tol=1e-12) for u, v in zip(x, y, strict=True)):
            return False
    return True


@pytest.mark.parametrize("policy", ["EpsilonGreedy", "UCB", "ThompsonSampling", "BayesUCB", "RandomPolicy"])
def test_adapter_matches_river_fed_event_by_event(policy: str) -> None:
    """Three micro-batches of 2,000 events: the adapter merges their sums into River's objects;
    River's policy is fed the same events one at a time. Same per-arm statistics (to 1e-12: a
    merged mean and a running mean round differently), and, seeded alike, the same 500 pulls."""
    events = _events(6_000, seed=1)
    river = _river(policy, SEED)
    for e in events:
        river.update(e["arm"], e["reward"])
    adapter = _adapter(policy)
    for i in range(3):
        chunk = events[i * 2_000 : (i + 1) * 2_000]
        adapter.update(Batch.from_events(chunk, window_end=(i + 1) * 60_000))

    merged = adapter.river_policy(seed=SEED)
    assert list(merged._rewards) == list(river._rewards)  # arms in order of first appearance
    assert _close(_statistics(merged), _statistics(river))
    offered = ARMS + ["new"]  # an arm River has never seen, too
    assert [merged.pull(offered) for _ in range(500)] == [river.pull(offered) for _ in range(500)]


@pytest.mark.parametrize("policy", ["EpsilonGreedy", "UCB", "ThompsonSampling", "BayesUCB", "RandomPolicy"])
def test_propensity_is_the_frequency_of_rivers_pull(policy: str) -> None:
    """The adapter's propensity is the probability of the arm River's pull returns."""
    adapter = _adapter(policy)
    adapter.update(Batch.from_events(_events(300, seed=2), window_end=60_000))
    n = 4_000
    picks: Counter[str] = Counter()
    props: dict[str, float] = {}
    for i in range(n):
        arm, p = RiverBandit.from_params(adapter.to_params(), seed=i).choose(None, ARMS)
        picks[arm] += 1
        props[arm] = p
    expected = adapter.probabilities(ARMS)
    for arm in ARMS:
        p = expected[arm]
        assert abs(picks[arm] / n - p) <= 5 * math.sqrt(p * (1 - p) / n) + adapter.propensity_error_bound
        if arm in props:
            assert math.isclose(props[arm], p, abs_tol=1e-12)


def test_params_are_json_and_rebuild_the_same_policy() -> None:
    adapter = _adapter("ThompsonSampling")
    adapter.update(Batch.from_events(_events(500, seed=3), window_end=60_000))
    wire = json.loads(json.dumps(adapter.to_params()))
    assert isinstance(from_params(wire), RiverBandit)
    restored = RiverBandit.from_params(wire, seed=adapter.seed)  # the seed is the key's, not in params
    seq = [restored.choose(None, ARMS) for _ in range(50)]
    assert seq == [adapter.choose(None, ARMS) for _ in range(50)]


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(ValueError, match="policy must be one of"):
        RiverBandit("Exp3")
    with pytest.raises(ValueError, match="epsilon"):
        RiverBandit("EpsilonGreedy", epsilon=2)
