"""UCB1 on sufficient statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from learners._arm_bandit import ArmBandit
from learners.base import check_arms
from learners.batch import ArmID, ArmStats

__all__ = ["UCB"]


class UCB(ArmBandit):
    """Upper confidence bound: pick ``argmax mean_a + delta * sqrt(2 ln N / n_a)``.

    ``mean_a`` is (initial + delayed reward) / trials and ``N`` the total trials over the offered
    arms. Arms never tried have an infinite bound and are tried first, in the order given. The
    policy is deterministic: the propensity is ``1 / number of tied arms`` (ties broken by the
    seeded generator). Scale rewards to about [0, 1] (``reward_scale``) for the bound to make sense.

    Params per arm: ``[n, S]`` (trials, total reward).

    Parameters
    ----------
    delta
        Width of the confidence bonus; 1 gives UCB1 (River's ``UCB(delta=1)``).
    reward_scale
        Rewards are divided by it before they enter the mean.
    half_life_ms, seed
        See :class:`learners.base.Learner`.

    Examples
    --------
    >>> from learners.batch import Batch
    >>> ucb = UCB(seed=1)
    >>> ucb.update(Batch.from_rows([
    ...     {"arm": "a", "trials": 100, "reward_sum": 30},
    ...     {"arm": "b", "trials": 10, "reward_sum": 2},
    ... ]))
    >>> ucb.choose(None, ["a", "b"])
    ('b', 1.0)
    >>> ucb.choose(None, ["a", "b", "c"])  # an unseen arm goes first
    ('c', 1.0)
    """

    FIELDS = ("trials", "reward")

    RETUNABLE: ClassVar[tuple[str, ...]] = ("half_life_ms", "delta")

    def __init__(
        self,
        delta: float = 1.0,
        *,
        reward_scale: float = 1.0,
        half_life_ms: float | None = None,
        seed: int | None = None,
    ) -> None:
        if not delta >= 0:
            raise ValueError(f"UCB: delta must be >= 0; got {delta!r}")
        if not reward_scale > 0:
            raise ValueError(f"UCB: reward_scale must be > 0; got {reward_scale!r}")
        super().__init__(half_life_ms=half_life_ms, seed=seed)
        self.delta = delta
        self.reward_scale = reward_scale

    def _row_values(self, row: ArmStats) -> list[float]:
        return [row.trials, row.total_reward / self.reward_scale]

    def _config(self) -> dict[str, Any]:
        return {"delta": self.delta, "reward_scale": self.reward_scale, "half_life_ms": self.half_life_ms}

    def bounds(self, arms: Sequence[ArmID]) -> dict[ArmID, float]:
        """Upper confidence bound of each arm (``inf`` for an untried arm)."""
        stats = [self._stats.get(arm) for arm in arms]
        total = sum(acc[0] for acc in stats if acc is not None)
        log_total = math.log(total) if total > 1 else 0.0
        out = {}
        for arm, acc in zip(arms, stats, strict=True):
            if acc is None or acc[0] <= 0:
                out[arm] = math.inf
            else:
                out[arm] = acc[1] / acc[0] + self.delta * math.sqrt(2 * log_total / acc[0])
        return out

    def choose(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> tuple[ArmID, float]:
        check_arms(arms, "UCB.choose")
        bounds = self.bounds(arms)
        for arm in arms:  # untried arms first, deterministically
            if bounds[arm] == math.inf:
                return arm, 1.0
        best = max(bounds.values())
        ties = [arm for arm in arms if bounds[arm] == best]
        return (ties[0] if len(ties) == 1 else self._rng.choice(ties)), 1.0 / len(ties)
