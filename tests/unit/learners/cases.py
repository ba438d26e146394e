"""Every learner, with a way to make it, feed it random batches and ask it to choose.

The contract suite is parametrised over :data:`CASES`; add a learner here and it is checked.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from learners import (
    UCB,
    BidAgent,
    BudgetPacer,
    EpsilonGreedy,
    Exp3,
    Learner,
    LinUCB,
    PerSegment,
    RiverBandit,
    SegmentAgent,
    ThompsonSampling,
)
from learners.batch import ArmStats

HOUR_MS = 3_600_000
FEATURES = ["bias", "f1", "f2"]
CREATIVES = ["cr0", "cr1", "cr2", 3]  # an int arm id too
MULTIPLIERS = ["0.5", "0.75", "1", "1.25", "1.5"]
RATES = ["0", "0.25", "0.5", "0.75", "1"]
SEGMENTS = ["seg0", "seg1"]


def _bandit_row(rng: random.Random, arm: Any) -> ArmStats:
    n = rng.randint(1, 40)
    clicks = rng.randint(0, n)
    delayed = rng.choice([0.0, 0.0, rng.random()])
    p = rng.choice([0.25, 0.5, 1.0])
    return ArmStats(
        arm=arm,
        trials=n,
        reward_sum=clicks,
        reward_sq_sum=clicks,
        delayed_sum=delayed,
        ipw_reward_sum=(clicks + delayed) / p,
    )


def _linear_row(rng: random.Random, arm: Any) -> ArmStats:
    n = rng.randint(1, 10)
    d = len(FEATURES)
    xx = [0.0] * (d * d)
    rx = [0.0] * d
    s = 0.0
    for _ in range(n):
        x = [1.0] + [rng.uniform(-1, 1) for _ in range(d - 1)]
        r = float(rng.random() < 0.3)
        s += r
        for i in range(d):
            rx[i] += r * x[i]
            for j in range(d):
                xx[i * d + j] += x[i] * x[j]
    return ArmStats(arm=arm, trials=n, reward_sum=s, reward_sq_sum=s, xx=tuple(xx), rx=tuple(rx))


def _bid_row(rng: random.Random, arm: Any) -> ArmStats:
    n = rng.randint(1, 30)
    m = float(arm)
    return ArmStats(
        arm=arm,
        state=f"{rng.randrange(3)}|{rng.randrange(4)}|{rng.choice(SEGMENTS)}",
        trials=n,
        reward_sum=rng.randint(0, n // 3 + 1) * min(m, 1.0),
        cost_sum=round(n * 0.1 * m * rng.uniform(0.5, 1.0), 4),
    )


def _pacer_row(rng: random.Random, arm: Any) -> ArmStats:
    n = rng.randint(1, 50)
    return ArmStats(
        arm=arm,
        state=f"{rng.randrange(3)}|{rng.randrange(4)}|all",
        trials=n,
        reward_sum=rng.randint(0, 3),
        cost_sum=round(n * float(arm) * rng.uniform(0.05, 0.2), 4),
    )


def _segment_row(rng: random.Random, arm: Any) -> ArmStats:
    """A creative's row in one segment (the state is the logged segment)."""
    row = _bandit_row(rng, arm)
    return ArmStats(**{**row.to_dict(), "state": rng.choice(SEGMENTS)})


def _segment_context(rng: random.Random) -> dict[str, Any]:
    return {"segment": rng.choice(SEGMENTS + ["seg_unseen"])}


def _features_context(rng: random.Random) -> dict[str, Any]:
    return {"features": [rng.gauss(0, 1), rng.gauss(0, 1)]}


def _bandit_context(rng: random.Random) -> dict[str, Any] | None:
    return None


def _linear_context(rng: random.Random) -> dict[str, Any]:
    return {"bias": 1.0, "f1": rng.uniform(-1, 1), "f2": rng.uniform(-1, 1)}


def _bid_context(rng: random.Random) -> dict[str, Any]:
    return {
        "time_block": rng.randrange(4),
        "segment": rng.choice(SEGMENTS + ["seg_unseen"]),
        "remaining_budget": rng.uniform(0, 50),
        "base_bid": 0.3,
    }


def _pacer_context(rng: random.Random) -> dict[str, Any]:
    return {
        "time_block": rng.randrange(4),
        "remaining_budget": rng.uniform(0, 50),
        "block_elapsed": rng.random(),
    }


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[int], Learner]
    row: Callable[[random.Random, Any], ArmStats]
    context: Callable[[random.Random], dict[str, Any] | None]
    arms: list[Any]
    unseen: list[Any]  # arms never fed to the learner

    def rows(self, rng: random.Random, n: int = 8) -> list[ArmStats]:
        return [self.row(rng, rng.choice(self.arms)) for _ in range(n)]


def _bandit(name: str, make: Callable[[int], Learner]) -> Case:
    return Case(name, make, _bandit_row, _bandit_context, CREATIVES, ["new"])


def _linear(name: str, make: Callable[[int], Learner]) -> Case:
    return Case(name, make, _linear_row, _linear_context, CREATIVES, ["new"])


CASES = [
    _bandit("ts_beta", lambda s: ThompsonSampling(seed=s, grid=256)),
    _bandit("ts_beta_discounted", lambda s: ThompsonSampling(seed=s, grid=256, half_life_ms=2 * HOUR_MS)),
    _bandit("ts_gaussian", lambda s: ThompsonSampling("gaussian", prior_var=0.25, seed=s, grid=256)),
    _bandit("ucb", lambda s: UCB(seed=s)),
    _bandit("ucb_discounted", lambda s: UCB(seed=s, half_life_ms=HOUR_MS)),
    _bandit("epsilon_greedy", lambda s: EpsilonGreedy(0.2, seed=s)),
    _bandit("exp3", lambda s: Exp3(0.2, eta=0.02, seed=s)),
    _bandit("river_epsilon_greedy", lambda s: RiverBandit("EpsilonGreedy", epsilon=0.2, seed=s)),
    _bandit("river_ucb", lambda s: RiverBandit("UCB", seed=s)),
    _bandit(
        "river_thompson_discounted",
        lambda s: RiverBandit("ThompsonSampling", grid=256, seed=s, half_life_ms=HOUR_MS),
    ),
    Case(
        "per_segment_ts",
        lambda s: PerSegment({"learner": "ThompsonSampling", "grid": 256}, min_trials=5, seed=s),
        _segment_row,
        _segment_context,
        CREATIVES,
        ["new"],
    ),
    Case(
        "per_segment_ucb_discounted",
        lambda s: PerSegment({"learner": "UCB", "half_life_ms": HOUR_MS}, min_trials=0, seed=s),
        _segment_row,
        _segment_context,
        CREATIVES,
        ["new"],
    ),
    # Value rows per segment label; no samples here, so it chooses uniformly (tests of the
    # clustering: test_segment_agent.py).
    Case(
        "segment_agent",
        lambda s: SegmentAgent(3, seed=s),
        _bandit_row,
        _features_context,
        ["k0", "k1"],
        ["k2"],
    ),
    _linear("lin_ucb", lambda s: LinUCB(FEATURES, alpha=0.5, seed=s)),
    _linear("lin_ucb_discounted", lambda s: LinUCB(FEATURES, seed=s, half_life_ms=HOUR_MS)),
    Case(
        "bid_agent",
        lambda s: BidAgent(MULTIPLIERS[:4], 40.0, n_blocks=4, budget_levels=20, max_bid=1.0, seed=s),
        _bid_row,
        _bid_context,
        MULTIPLIERS[:4],
        ["1.5"],
    ),
    Case(
        "budget_pacer",
        lambda s: BudgetPacer(30.0, n_blocks=4, seed=s),
        _pacer_row,
        _pacer_context,
        RATES[:4],
        ["1"],
    ),
]
