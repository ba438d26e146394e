"""Online results against batch references: closed forms, numpy sums, River, brute force."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
from river import proba

from learners import UCB, BidAgent, BudgetPacer, Exp3, LinUCB, ThompsonSampling
from learners._argmax import argmax_probabilities, error_bound
from learners.batch import ArmStats, Batch

HOUR_MS = 3_600_000


def _binary_events(seed: int, n: int = 600) -> list[dict[str, object]]:
    rng = random.Random(seed)
    ctr = {"a": 0.08, "b": 0.03, "c": 0.05}
    return [{"arm": arm, "reward": float(rng.random() < ctr[arm])} for arm in rng.choices(list(ctr), k=n)]


def test_thompson_beta_posterior_is_the_closed_form_and_matches_river() -> None:
    events = _binary_events(1)
    ts = ThompsonSampling(prior_alpha=2.0, prior_beta=30.0, seed=0)
    # Several micro-batches, as the job would send them.
    for i in range(0, len(events), 100):
        ts.update(Batch.from_events(events[i : i + 100], window_end=i))
    for arm in "abc":
        rewards = [e["reward"] for e in events if e["arm"] == arm]
        alpha, beta = 2.0 + sum(rewards), 30.0 + len(rewards) - sum(rewards)
        assert ts.posterior_params(arm) == (alpha, beta)
        river_beta = proba.Beta(2, 30)
        for r in rewards:
            river_beta.update(r)
        assert (river_beta.alpha, river_beta.beta) == (alpha, beta)
        assert ts.posterior(arm).mode == pytest.approx(river_beta.mode, rel=1e-12)


def test_thompson_delayed_reward_adds_reward_not_trials() -> None:
    ts = ThompsonSampling(seed=0)
    ts.update(Batch.from_rows([{"arm": "a", "trials": 10, "reward_sum": 2}]))
    ts.update(Batch.from_rows([{"arm": "a", "delayed_sum": 0.5}]))
    assert ts.posterior_params("a") == (1 + 2.5, 1 + 10 - 2.5)
    assert ts.stats("a") == {"trials": 10.0, "reward": 2.5}


def test_thompson_gaussian_posterior_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    rewards = rng.normal(0.4, 0.3, 500)
    events = [{"arm": "a", "reward": float(r)} for r in rewards]
    ts = ThompsonSampling("gaussian", prior_mean=0.0, prior_var=1.0, prior_n=2.0, seed=0)
    ts.update(Batch.from_events(events))
    n = len(rewards)
    mean = (2.0 * 0.0 + rewards.sum()) / (2.0 + n)
    var = (2.0 * 1.0 + ((rewards - rewards.mean()) ** 2).sum()) / (2.0 + n)
    got_mean, got_sd = ts.posterior_params("a")
    assert got_mean == pytest.approx(mean, rel=1e-12)
    assert got_sd == pytest.approx(math.sqrt(var / (2.0 + n)), rel=1e-9)
    assert ts.posterior("a").sigma == pytest.approx(got_sd, rel=1e-9)  # the River view agrees


def _p_b_beats_a(aa: int, ba: int, ab: int, bb: int) -> float:
    """Closed form of P(X_b > X_a) for X ~ Beta with integer parameters."""
    total = 0.0
    for i in range(ab):
        total += math.exp(
            math.lgamma(aa + i)
            + math.lgamma(ba + bb)
            - math.lgamma(aa + i + ba + bb)
            - math.log(bb + i)
            - (math.lgamma(1 + i) + math.lgamma(bb) - math.lgamma(1 + i + bb))
            - (math.lgamma(aa) + math.lgamma(ba) - math.lgamma(aa + ba))
        )
    return total


@pytest.mark.parametrize(
    ("a", "b"), [((3, 40), (5, 50)), ((30, 970), (41, 959)), ((1, 1), (2, 1)), ((200, 800), (180, 820))]
)
def test_thompson_propensity_within_its_error_bound_of_the_closed_form(a: tuple, b: tuple) -> None:
    grid = 512
    probs = argmax_probabilities(
        "beta", np.array([a[0], b[0]], float), np.array([a[1], b[1]], float), grid=grid
    )
    exact = _p_b_beats_a(a[0], a[1], b[0], b[1])
    assert abs(probs[1] - exact) <= error_bound(grid, 2)


def test_thompson_propensities_match_monte_carlo_for_many_arms() -> None:
    alpha = np.array([12.0, 15.0, 9.0, 20.0, 14.0, 3.0])
    beta = np.array([300.0, 310.0, 200.0, 390.0, 330.0, 100.0])
    probs = argmax_probabilities("beta", alpha, beta, grid=1024)
    draws = np.random.default_rng(0).beta(alpha[:, None], beta[:, None], size=(6, 400_000))
    freq = np.bincount(draws.argmax(axis=0), minlength=6) / draws.shape[1]
    # Quadrature bound plus 5 Monte Carlo standard errors.
    tol = error_bound(1024, 6) + 5 * np.sqrt(freq * (1 - freq) / draws.shape[1])
    assert np.all(np.abs(probs - freq) <= tol)
    gauss = argmax_probabilities("gaussian", np.array([0.1, 0.12, 0.0]), np.array([0.02, 0.03, 0.05]))
    g_draws = np.random.default_rng(1).normal(
        [[0.1], [0.12], [0.0]], [[0.02], [0.03], [0.05]], size=(3, 400_000)
    )
    g_freq = np.bincount(g_draws.argmax(axis=0), minlength=3) / 400_000
    assert np.all(
        np.abs(gauss - g_freq) <= error_bound(1024, 3) + 5 * np.sqrt(g_freq * (1 - g_freq) / 400_000)
    )


def test_discounting_equals_explicitly_weighted_sums() -> None:
    half_life = 2 * HOUR_MS
    ts = ThompsonSampling(seed=0, half_life_ms=half_life)
    windows = [(0, 10, 2), (HOUR_MS, 20, 1), (5 * HOUR_MS, 5, 3), (2 * HOUR_MS, 8, 4)]  # the last is late
    for t, n, s in windows:
        ts.update(Batch.from_rows([{"arm": "a", "trials": n, "reward_sum": s}], window_end=t))
    t_ref = max(t for t, _, _ in windows)
    n_ref = sum(n * 0.5 ** ((t_ref - t) / half_life) for t, n, _ in windows)
    s_ref = sum(s * 0.5 ** ((t_ref - t) / half_life) for t, _, s in windows)
    # Discounted evidence is kept to nine significant digits.
    assert ts.stats("a")["trials"] == pytest.approx(n_ref, rel=1e-8)
    assert ts.stats("a")["reward"] == pytest.approx(s_ref, rel=1e-8)


def test_lin_ucb_a_and_b_are_numpy_sums_over_the_same_rows() -> None:
    rng = np.random.default_rng(3)
    features = ["bias", "x1", "x2", "x3"]
    n = 400
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 3))])
    arms = rng.choice(["a", "b"], size=n)
    r = (rng.random(n) < 1 / (1 + np.exp(-X @ np.array([-2.0, 1.0, -0.5, 0.2])))).astype(float)
    events = [
        {"arm": str(arm), "reward": float(ri), "context": dict(zip(features, x.tolist(), strict=True))}
        for arm, ri, x in zip(arms, r, X, strict=True)
    ]
    lin = LinUCB(features, ridge=2.0, seed=0)
    for i in range(0, n, 64):
        lin.update(Batch.from_events(events[i : i + 64], features=features, window_end=i))
    for arm in ("a", "b"):
        mask = arms == arm
        A_ref = 2.0 * np.eye(4) + X[mask].T @ X[mask]
        b_ref = X[mask].T @ r[mask]
        A, b = lin.matrices(arm)
        np.testing.assert_allclose(A, A_ref, rtol=1e-12)
        np.testing.assert_allclose(b, b_ref, rtol=1e-12, atol=1e-12)
    # The chosen arm maximises the ridge UCB computed directly with numpy.
    x = X[0]
    ucb = {}
    for arm in ("a", "b"):
        A, b = lin.matrices(arm)
        theta = np.linalg.solve(A, b)
        ucb[arm] = theta @ x + 1.0 * math.sqrt(x @ np.linalg.solve(A, x))
    bounds = lin.bounds(x.tolist(), ["a", "b"])
    assert bounds == pytest.approx(ucb, rel=1e-9)
    assert lin.choose(x.tolist(), ["a", "b"])[0] == max(ucb, key=ucb.__getitem__)


def test_ucb_bounds_follow_the_formula() -> None:
    ucb = UCB(delta=0.5, seed=0)
    ucb.update(Batch.from_rows([{"arm": "a", "trials": 40, "reward_sum": 10}, {"arm": "b", "trials": 10}]))
    total = 50
    assert ucb.bounds(["a", "b"]) == pytest.approx(
        {
            "a": 10 / 40 + 0.5 * math.sqrt(2 * math.log(total) / 40),
            "b": 0.5 * math.sqrt(2 * math.log(total) / 10),
        }
    )


def test_exp3_probabilities_follow_the_formula() -> None:
    exp3 = Exp3(0.1, eta=0.1, reward_max=2.0, seed=0)
    exp3.update(Batch.from_rows([{"arm": "a", "ipw_reward_sum": 4.0}, {"arm": "b", "ipw_reward_sum": 1.0}]))
    wa, wb = math.exp(0.1 * 4.0 / 2.0), math.exp(0.1 * 1.0 / 2.0)
    expected = {"a": 0.9 * wa / (wa + wb) + 0.05, "b": 0.9 * wb / (wa + wb) + 0.05}
    assert exp3.probabilities(["a", "b"]) == pytest.approx(expected, rel=1e-12)


def test_bid_agent_first_action_matches_brute_force_planning() -> None:
    """One segment, three blocks: enumerate every action sequence and compare with the DP."""
    arms = ["0.5", "1", "1.5"]
    value = {"0.5": 0.02, "1": 0.035, "1.5": 0.042}  # value per request
    cost = {"0.5": 0.03, "1": 0.08, "1.5": 0.15}  # spend per request
    volume = [90.0, 300.0, 210.0]  # requests per block, one day
    rows = [
        ArmStats(
            arm=m,
            state=f"0|{t}|s",
            trials=volume[t] / 3,
            reward_sum=volume[t] / 3 * value[m],
            cost_sum=volume[t] / 3 * cost[m],
        )
        for t in range(3)
        for m in arms
    ]

    def brute(budget: float, start: int) -> tuple[float, str]:
        best = (-1.0, "")
        for seq in itertools.product(arms, repeat=3 - start):
            left, clicks = budget, 0.0
            for t, m in zip(range(start, 3), seq, strict=True):
                spend = volume[t] * cost[m]
                paid = min(spend, left)
                clicks += volume[t] * value[m] * (paid / spend)
                left -= paid
            best = max(best, (clicks, seq[0]))
        return best

    for budget in (10.0, 25.0, 40.0, 60.0):
        agent = BidAgent(arms, budget, n_blocks=3, budget_levels=400, epsilon=0.0, prior_trials=1e-9, seed=0)
        agent.update(Batch(tuple(rows), window_end=0))
        clicks, first = brute(budget, 0)
        chosen, _ = agent.choose({"time_block": 0, "segment": "s", "remaining_budget": budget}, arms)
        assert chosen == first, (budget, chosen, first, clicks)


def test_budget_pacer_target_rate_spreads_the_remaining_budget() -> None:
    pacer = BudgetPacer(120.0, n_blocks=3, seed=0)
    rows = [
        {"state": "0|0|all", "arm": "1", "trials": 100, "cost_sum": 20.0},  # full-rate spend 20
        {"state": "0|1|all", "arm": "0.5", "trials": 400, "cost_sum": 40.0},  # 200 entered: 0.2 each -> 80
        {"state": "0|2|all", "arm": "1", "trials": 300, "cost_sum": 60.0},  # 60
    ]
    pacer.update(Batch.from_rows(rows))
    assert pacer.full_rate_spend() == pytest.approx([20.0, 80.0, 60.0])
    assert pacer.target_rate({"time_block": 0, "remaining_budget": 120.0}) == pytest.approx(120 / 160)
    assert pacer.target_rate(
        {"time_block": 1, "remaining_budget": 70.0, "block_elapsed": 0.5}
    ) == pytest.approx(70 / 100)
    assert pacer.target_rate({"time_block": 2, "remaining_budget": 100.0}) == 1.0
