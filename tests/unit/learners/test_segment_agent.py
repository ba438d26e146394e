"""The segment agent against the simulator's ground truth: it separates high- from low-value users."""

from __future__ import annotations

import json

import numpy as np
import pytest
from river import metrics

from learners import SegmentAgent, from_params
from learners.batch import Batch
from scripts import demo
from sim.market import Market

SIM = demo.demo_sim_config(days=1, seed=7)  # the demo's market: 4 segments, values 0.5x to 2x
FEATURES = list(range(2, SIM.feature_dim))  # the user's vector, not the time of day
T0 = 1_735_689_600_000


def _traffic(market: Market, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Users of ``n`` requests (by the market's own sampler) and their feature vectors."""
    rng = np.random.default_rng(seed)
    users = market.sample_users(rng, n)
    ts = T0 + rng.integers(0, 86_400_000, n)
    return users, market.features(users, ts)


def _value_rows(agent: SegmentAgent, market: Market, users: np.ndarray, x: np.ndarray) -> list[dict]:
    """What the job sums for the agent: per label it served, impressions and their value (clicks
    and conversion credit per impression, the market's expectation under a uniform creative)."""
    camp = market.campaigns[0]
    sums: dict[str, list[float]] = {}
    for u, features in zip(users.tolist(), x.tolist(), strict=True):
        label, _ = agent.choose({"features": features}, agent.labels)
        s = market.user_segment[u]
        ctr = float(market.ctr[camp.index, s].mean())
        value = ctr + float(
            np.mean(
                [market.expected_value(camp.campaign_id, market.segments[s], cr) for cr in camp.creatives]
            )
        )
        acc = sums.setdefault(label, [0.0, 0.0])
        acc[0] += 1
        acc[1] += value
    return [{"arm": label, "trials": n, "reward_sum": v} for label, (n, v) in sums.items()]


@pytest.fixture(scope="module")
def trained() -> tuple[SegmentAgent, Market]:
    market = Market(SIM)
    agent = SegmentAgent(SIM.n_segments, features=FEATURES, seed=3)
    # Two days of a campaign's sampled impressions, in micro-batches of 50 samples.
    users, x = _traffic(market, 2_000, seed=1)
    for i in range(0, len(x), 50):
        agent.update(Batch.from_rows([], samples=x[i : i + 50].tolist(), window_end=T0 + i))
    users, x = _traffic(market, 4_000, seed=2)
    agent.update(Batch.from_rows(_value_rows(agent, market, users, x), window_end=T0 + 10**6))
    return agent, market


def _adjusted_rand(truth: np.ndarray, predicted: np.ndarray) -> float:
    metric = metrics.AdjustedRand()
    for t, p in zip(truth.tolist(), predicted.tolist(), strict=True):
        metric.update(t, p)
    return float(metric.get())


def test_segments_separate_high_from_low_value_users_better_than_random(trained) -> None:
    """On users it has not learned from: the agent's high-value segments (worth more per impression
    than its mean impression, ``SegmentAgent.high_value``) against the truth
    (``Market.high_value``), by adjusted Rand index, and its clusters against the true segments,
    by purity. A uniform random assignment, the serving client's default, scores an ARI of about 0
    on the same users.

    Purity cannot reach 1 here: the true segments 0 and 2 of this market lie 1.0 apart, with a
    noise of 0.5 per dimension, so even the true centres misplace about 16% of their users
    (Φ(-1.0)); assigning each user to the nearest true centre gives a purity of 0.92."""
    agent, market = trained
    users, x = _traffic(market, 3_000, seed=9)
    labels = [agent.segment_of(f) for f in x.tolist()]
    assert None not in labels
    high_labels = set(agent.high_value())
    predicted = np.array([label in high_labels for label in labels])
    truth = market.high_value(users)
    ari = _adjusted_rand(truth, predicted)
    random_ari = _adjusted_rand(truth, np.random.default_rng(0).random(len(users)) < 0.5)
    assert ari >= 0.9, f"ARI {ari:.3f} of high/low value against the truth"
    assert abs(random_ari) < 0.05, random_ari

    true_segments = market.user_segment[users]
    by_label: dict[str, list[int]] = {}
    for label, s in zip(labels, true_segments.tolist(), strict=True):
        by_label.setdefault(label, []).append(s)
    purity = sum(max(np.bincount(members)) for members in by_label.values()) / len(users)
    random_purity = max(np.bincount(true_segments)) / len(users)
    assert purity >= 0.85 and random_purity < 0.4, (
        f"purity {purity:.3f} of the segments against the true ones"
    )


def test_value_per_segment_follows_the_market(trained) -> None:
    """The learned value of each segment ranks the true segments it holds by their value factor."""
    agent, market = trained
    users, x = _traffic(market, 2_000, seed=11)
    factor: dict[str, list[float]] = {}
    for u, f in zip(users.tolist(), x.tolist(), strict=True):
        factor.setdefault(agent.segment_of(f), []).append(float(market.segment_value[market.user_segment[u]]))
    by_value = sorted(agent.labels, key=agent.value)
    by_factor = sorted(agent.labels, key=lambda label: np.mean(factor[label]))
    assert by_value == by_factor


def test_params_round_trip_and_serve_the_same_segments(trained) -> None:
    agent, market = trained
    restored = from_params(json.loads(json.dumps(agent.to_params())))
    _, x = _traffic(market, 500, seed=12)
    assert [restored.segment_of(f) for f in x.tolist()] == [agent.segment_of(f) for f in x.tolist()]
    params = agent.to_params()
    assert len(params["centroids"]) == SIM.n_segments and params["warm"] == []
    assert len(json.dumps(params, separators=(",", ":"))) < 1_500


def test_bad_samples_are_skipped_not_fatal() -> None:
    """A short, non-finite or differently sized vector in the sample is left out; the rest is learned."""
    agent = SegmentAgent(2, features=[0, 1], warmup=4, seed=0)
    good = [[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]]
    agent.update(Batch.from_rows([], samples=[[1.0], [float("nan"), 0.0], *good]))
    assert agent.to_params()["samples"] == 4
    assert agent.segment_of([0.0, 0.1]) != agent.segment_of([5.0, 5.1])
    with pytest.raises(ValueError, match="features"):
        agent.choose({}, agent.labels)


def test_bad_config_names_the_argument() -> None:
    with pytest.raises(ValueError, match="n_segments"):
        SegmentAgent(1)
    with pytest.raises(ValueError, match="sample_rate"):
        SegmentAgent(4, sample_rate=0)
