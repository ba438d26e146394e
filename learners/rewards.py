"""Per-agent reward functions: the Python reference of the reward definitions computed in SQL.

The feedback job computes rewards in Flink SQL from configuration; these pure functions state the
same definitions for tests, simulations and warm starts. All weights come from :class:`RewardConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RewardConfig", "bid_reward", "budget_reward", "creative_reward", "decay_weight"]


@dataclass(frozen=True, slots=True)
class RewardConfig:
    """Reward weights (defaults follow the architecture notes).

    >>> RewardConfig(half_life_days=-1)
    Traceback (most recent call last):
    ...
    ValueError: RewardConfig: half_life_days must be > 0; got -1
    """

    click_value: float = 1.0  # reward of a click
    conversion_weight: float = 1.0  # multiplier on attributed conversion credit
    half_life_days: float = 7.0  # time-decay attribution half-life
    overspend_penalty: float = 2.0  # budget agent: penalty per unit of spend above plan

    def __post_init__(self) -> None:
        for name in ("click_value", "conversion_weight", "overspend_penalty"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"RewardConfig: {name} must be >= 0; got {getattr(self, name)!r}")
        if not self.half_life_days > 0:
            raise ValueError(f"RewardConfig: half_life_days must be > 0; got {self.half_life_days!r}")


def decay_weight(delta_ms: float, config: RewardConfig = RewardConfig()) -> float:
    """Time-decay weight ``2^(-Δt / half_life)`` of a touch ``delta_ms`` before the conversion.

    >>> decay_weight(7 * 86_400_000)
    0.5
    """
    if delta_ms < 0:
        raise ValueError(f"decay_weight: delta_ms must be >= 0; got {delta_ms!r}")
    return math.pow(2.0, -delta_ms / (config.half_life_days * 86_400_000))


def creative_reward(
    clicked: bool, conversion_credit: float = 0.0, config: RewardConfig = RewardConfig()
) -> float:
    """Creative agent: click value plus weighted conversion credit.

    >>> creative_reward(True), creative_reward(False, conversion_credit=0.25)
    (1.0, 0.25)
    """
    return config.click_value * float(clicked) + config.conversion_weight * conversion_credit


def bid_reward(
    clicked: bool, cost: float, conversion_credit: float = 0.0, config: RewardConfig = RewardConfig()
) -> float:
    """Bid agent: click value plus conversion credit minus the price paid.

    >>> bid_reward(True, cost=0.2)
    0.8
    """
    return creative_reward(clicked, conversion_credit, config) - cost


def budget_reward(
    value: float, spend: float, planned_spend: float, config: RewardConfig = RewardConfig()
) -> float:
    """Budget agent, per time block: attributed value minus a penalty on spend above the plan.

    >>> budget_reward(value=10.0, spend=12.0, planned_spend=11.0)
    8.0
    """
    return value - config.overspend_penalty * max(spend - planned_spend, 0.0)
