"""Pure-Python learners on River: bandits and RL agents with compact params (no Flink imports).

Every learner implements ``choose(context, arms) -> (arm, propensity)``, ``update(batch)`` from
sufficient statistics (:mod:`learners.batch`) and ``to_params()`` / ``from_params()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from learners.base import Learner
from learners.batch import ArmStats, Batch
from learners.bid_agent import BidAgent
from learners.budget_agent import BudgetPacer
from learners.epsilon_greedy import EpsilonGreedy
from learners.exp3 import Exp3
from learners.lin_ucb import LinUCB
from learners.per_segment import PerSegment
from learners.river_bandit import RiverBandit
from learners.safety import SafetyCaps
from learners.segment_agent import SegmentAgent
from learners.thompson import ThompsonSampling
from learners.ucb import UCB

LEARNERS: dict[str, type[Learner]] = {
    cls.__name__: cls
    for cls in (
        ThompsonSampling, UCB, EpsilonGreedy, Exp3, LinUCB, BidAgent, BudgetPacer, PerSegment, SegmentAgent,
        RiverBandit,
    )
}  # fmt: skip


def from_params(params: Mapping[str, Any]) -> Learner:
    """Rebuild any learner from its params (dispatch on ``params["learner"]``).

    >>> ts = ThompsonSampling(seed=1)
    >>> type(from_params(ts.to_params())).__name__
    'ThompsonSampling'
    """
    name = params.get("learner")
    if name not in LEARNERS:
        raise ValueError(
            f"learners.from_params: unknown learner {name!r}; expected one of {sorted(LEARNERS)}"
        )
    return LEARNERS[name].from_params(params)


__all__ = [
    "LEARNERS",
    "UCB",
    "ArmStats",
    "Batch",
    "BidAgent",
    "BudgetPacer",
    "EpsilonGreedy",
    "Exp3",
    "Learner",
    "LinUCB",
    "PerSegment",
    "RiverBandit",
    "SafetyCaps",
    "SegmentAgent",
    "ThompsonSampling",
    "from_params",
]
