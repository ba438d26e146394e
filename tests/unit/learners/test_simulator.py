"""Learners on the simulated market, checked against its ground truth (``sim.market``).

The environment loop is :mod:`tests.unit.learners.sim_env` (second-price auctions, true CTRs,
market prices, budgets), built on what ``sim.market`` exposes. Every run is seeded; tolerances are
stated next to each assertion.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from learners import BidAgent, BudgetPacer, Learner, ThompsonSampling
from learners.batch import ArmStats
from learners.ope import RiverRewardModel, TabularRewardModel, evaluate
from learners.safety import SafetyCaps
from learners.warm_start import batch_from_logs
from tests.unit.learners.sim_env import (
    Bidder,
    OnBlock,
    batch_of,
    creative_experiment,
    day_draws,
    market,
    run_day,
)

SEED = 7


@pytest.fixture(scope="module")
def m():  # type: ignore[no-untyped-def]
    return market(SEED)


# -- creative agent ------------------------------------------------------------------------------


def test_thompson_creative_agent_reaches_the_oracle_ctr_with_sublinear_regret(m) -> None:  # type: ignore[no-untyped-def]
    """40 (campaign, segment) keys, 6,000 impressions each, micro-batches of 100.

    Measured (seed 7): CTR over the second half 98.7% of the oracle (94.3% over the whole run);
    regret of the second half 0.12 x that of the first half.
    """
    run = creative_experiment(m, impressions=6000, batch=100)
    half = len(run.regret) // 2
    ctr_ratio_late = run.ctr_shown[half:].sum() / run.oracle[half:].sum()
    assert ctr_ratio_late >= 0.95
    first, second = run.regret[:half].sum(), run.regret[half:].sum()
    # Linear regret would make both halves equal; require the second half below half the first.
    assert second < 0.5 * first, (first, second)
    # And the curve flattens: the last quarter adds less regret than the second quarter.
    q = half // 2
    assert run.regret[3 * q :].sum() < run.regret[q : 2 * q].sum()


# -- off-policy evaluation -----------------------------------------------------------------------


def _uniform_logs(m, n: int, seed: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """Creative decisions of a uniform-random logging policy, clicks from the true CTRs."""
    rng = np.random.default_rng(seed)
    camps = m.sample_campaigns(rng, n)
    segs = m.user_segment[m.sample_users(rng, n)]
    k = np.array([len(m.campaigns[c].creatives) for c in camps])
    pick = (rng.random(n) * k).astype(int)
    ctr = m.ctr[camps, segs, pick]
    clicks = rng.random(n) < ctr
    return [
        {
            "context": {"campaign_id": m.campaigns[c].campaign_id, "segment": m.segments[s]},
            "action": m.campaigns[c].creatives[a],
            "propensity": 1.0 / kk,
            "reward": float(r),
        }
        for c, s, a, kk, r in zip(
            camps.tolist(), segs.tolist(), pick.tolist(), k.tolist(), clicks.tolist(), strict=True
        )
    ]


def _true_value(m, logs: list[dict], policy) -> float:  # type: ignore[no-untyped-def]
    """Expected CTR of ``policy`` over the logged contexts, from the market's true CTRs."""
    total = 0.0
    for row in logs:
        ctx = row["context"]
        total += sum(p * m.true_ctr(ctx["campaign_id"], ctx["segment"], a) for a, p in policy(ctx).items())
    return total / len(logs)


def test_snips_and_dr_estimate_a_target_policy_ctr_within_10_percent(m) -> None:  # type: ignore[no-untyped-def]
    """Logging policy: uniform random creatives (propensity 1/4). Targets: the Thompson-sampling
    policy learned from the first half of the logs, the oracle, and a 70/30 mix of oracle and
    uniform, each evaluated on the second half. Standard errors are about 3% of the value, so the
    10% bound is more than 3 standard errors."""
    logs = _uniform_logs(m, 120_000, seed=SEED)
    train, test = logs[:60_000], logs[60_000:]
    by_key: dict[tuple[str, str], ThompsonSampling] = {}
    for (cid, seg), rows in _group(train).items():
        ts = ThompsonSampling(seed=0)
        table_rows = [
            {"action": r["action"], "propensity": r["propensity"], "reward": r["reward"]} for r in rows
        ]
        ts.update(batch_from_logs(pa.Table.from_pylist(table_rows)))
        by_key[(cid, seg)] = ts

    def thompson(ctx):  # type: ignore[no-untyped-def]
        camp = m.campaign(ctx["campaign_id"])
        return by_key[(ctx["campaign_id"], ctx["segment"])].probabilities(list(camp.creatives))

    def oracle(ctx):  # type: ignore[no-untyped-def]
        return {m.best_creative(ctx["campaign_id"], ctx["segment"]): 1.0}

    def mixed(ctx):  # type: ignore[no-untyped-def]
        creatives = m.campaign(ctx["campaign_id"]).creatives
        best = m.best_creative(ctx["campaign_id"], ctx["segment"])
        return {a: 0.3 / len(creatives) + (0.7 if a == best else 0.0) for a in creatives}

    # Two reward models for DR: a table per (campaign, segment, creative), and River's linear
    # regressor on indicators of campaign and segment per creative (no interaction: biased as a
    # model, yet DR stays within the bound, its correction term being unbiased).
    tabular = TabularRewardModel(key=lambda ctx: (ctx["campaign_id"], ctx["segment"])).fit(train)
    river_model = RiverRewardModel(epochs=1).fit(train)
    for name, policy in (("thompson", thompson), ("oracle", oracle), ("mixed", mixed)):
        truth = _true_value(m, test, policy)
        for model_name, model in (("tabular", tabular), ("river", river_model)):
            est = evaluate(test, policy, model)
            for kind in ("snips", "dr"):
                rel = abs(est[kind].value - truth) / truth
                assert rel < 0.10, (name, model_name, kind, est[kind], truth)


def _group(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        out.setdefault((r["context"]["campaign_id"], r["context"]["segment"]), []).append(r)
    return out


# -- budget agent --------------------------------------------------------------------------------

RATES = ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"]


def _unthrottled_spend(m, camp) -> float:  # type: ignore[no-untyped-def]
    """Expected daily spend bidding ``base_bid`` on every request (market closed form)."""
    share = np.bincount(m.user_segment, minlength=len(m.segments)) / len(m.user_segment)
    per_request = sum(share[i] * m.expected_cost(s, camp.base_bid) for i, s in enumerate(m.segments))
    return m.config.requests_per_day * camp.traffic_share * per_request


def _paced_bidder(pacer: BudgetPacer, bid: float) -> Bidder:
    def bidder(h: int, elapsed: float, seg: str, left: float) -> tuple[float, str, float]:
        ctx = {"time_block": h, "remaining_budget": left, "block_elapsed": elapsed}
        rate, _ = pacer.choose(ctx, RATES)
        return bid, str(rate), float(rate) if pacer.admit(left, bid) else 0.0  # hard cap

    return bidder


def _updater(learner: Learner, day: int) -> OnBlock:
    def on_block(hour: int, rows: list[ArmStats]) -> None:
        learner.update(batch_of(rows, day, hour))

    return on_block


def test_budget_pacer_ends_the_day_within_5_percent_of_budget_and_never_over(m) -> None:  # type: ignore[no-untyped-def]
    """Every campaign bids its base bid; the pacer throttles. Budget: the campaign's daily budget,
    or 60% of its unthrottled spend when that is lower (pacing needs traffic to pace)."""
    days = 4
    for camp in m.campaigns:
        budget = min(camp.daily_budget, 0.6 * _unthrottled_spend(m, camp))
        pacer = BudgetPacer(budget, seed=camp.index)
        for day in range(days):
            result = run_day(
                m,
                camp,
                day_draws(m, camp, day, seed=SEED),
                _paced_bidder(pacer, camp.base_bid),
                budget=budget,
                on_block=_updater(pacer, day),
                day=day,
            )
            assert result.spend <= budget  # never over, on any day, including the first
            if day >= 1:  # the first day has nothing learned yet
                assert result.spend >= 0.95 * budget, (camp.campaign_id, day, result.spend, budget)
            # Paced, not front-loaded: the first half of the day spends 25-75% of the total.
            if day >= 1:
                share = sum(result.spend_by_hour[:12]) / result.spend
                assert 0.25 <= share <= 0.75, (camp.campaign_id, day, share)


# -- bid agent -----------------------------------------------------------------------------------


def _agent_bidder(agent: BidAgent, base_bid: float, arms: list[str]) -> Bidder:
    def bidder(h: int, elapsed: float, seg: str, left: float) -> tuple[float, str, float]:
        ctx = {"time_block": h, "segment": seg, "remaining_budget": left, "base_bid": base_bid}
        arm, _ = agent.choose(ctx, arms)
        return agent.bid(ctx, arm), str(arm), 1.0

    return bidder


def _linear_bidder(caps: SafetyCaps, bids: dict[str, float]) -> Bidder:
    """Linear bidding: ``bids[segment] = base * CTR(segment) / average CTR``, under the same caps."""

    def bidder(h: int, elapsed: float, seg: str, left: float) -> tuple[float, str, float]:
        return caps.cap(bids[seg], left), "linear", 1.0

    return bidder


def _bid_comparison(m, *, train_days: int, test_days: int):  # type: ignore[no-untyped-def]
    """RL clicks/spend and linear-bidding clicks/spend at equal spend, summed over campaigns."""
    mults = [f"{x:g}" for x in m.config.bid_multipliers]
    share = np.bincount(m.user_segment, minlength=len(m.segments)) / len(m.user_segment)
    totals = {"rl": [0, 0.0], "linear": [0, 0.0], "linear_base": [0, 0.0]}
    for camp in m.campaigns:
        budget = camp.daily_budget
        caps = SafetyCaps(max_bid=10 * camp.base_bid)
        agent = BidAgent(mults, budget, epsilon=0.2, max_bid=caps.max_bid, seed=camp.index)
        for day in range(train_days):
            draws = day_draws(m, camp, day, seed=SEED)
            run_day(
                m,
                camp,
                draws,
                _agent_bidder(agent, camp.base_bid, mults),
                budget=budget,
                on_block=_updater(agent, day),
                day=day,
            )
        params = agent.to_params()
        greedy = BidAgent.from_params(params | {"config": params["config"] | {"epsilon": 0.0}}, seed=0)
        ctr = {s: m.true_ctr(camp.campaign_id, s, m.best_creative(camp.campaign_id, s)) for s in m.segments}
        avg_ctr = sum(share[i] * ctr[s] for i, s in enumerate(m.segments))

        def linear(base: float, caps: SafetyCaps = caps, ctr: dict = ctr, avg: float = avg_ctr) -> Bidder:
            return _linear_bidder(caps, {s: base * c / avg for s, c in ctr.items()})

        for day in range(train_days, train_days + test_days):
            draws = day_draws(m, camp, day, seed=SEED)
            r = run_day(m, camp, draws, _agent_bidder(greedy, camp.base_bid, mults), budget=budget)
            # Linear bidding at equal spend: the smallest base whose spend reaches the RL spend.
            lo, hi = 0.0, caps.max_bid * 2
            for _ in range(30):
                mid = (lo + hi) / 2
                if run_day(m, camp, draws, linear(mid), budget=budget).spend < 0.999 * r.spend:
                    lo = mid
                else:
                    hi = mid
            lin = run_day(m, camp, draws, linear(hi), budget=budget)
            base = run_day(m, camp, draws, linear(camp.base_bid), budget=budget)
            for key, res in (("rl", r), ("linear", lin), ("linear_base", base)):
                totals[key][0] += res.clicks
                totals[key][1] += res.spend
    return totals


@pytest.fixture(scope="module")
def bid_totals(m):  # type: ignore[no-untyped-def]
    return _bid_comparison(m, train_days=6, test_days=3)


def test_bid_agent_never_bids_over_caps(m, bid_totals) -> None:  # type: ignore[no-untyped-def]
    agent = BidAgent(["0.5", "1", "2"], 50.0, max_bid=0.5, seed=0)
    for left in (100.0, 0.3, 0.0):
        ctx = {"time_block": 3, "segment": "seg0", "remaining_budget": left, "base_bid": 0.4}
        for arm in ("0.5", "1", "2"):
            assert agent.bid(ctx, arm) <= min(0.5, left)
    spend = bid_totals["rl"][1]
    assert spend <= sum(c.daily_budget for c in m.campaigns) * 3 + 1e-9
