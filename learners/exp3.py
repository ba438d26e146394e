"""Exp3 (adversarial bandit) on importance-weighted reward sums."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from learners._arm_bandit import ArmBandit
from learners.base import check_arms
from learners.batch import ArmID, ArmStats

__all__ = ["Exp3"]


class Exp3(ArmBandit):
    """Exp3 with log-weights, fed by ``ipw_reward_sum`` (Σ reward / logged propensity).

    The probability of arm ``a`` among the ``K`` offered arms is
    ``(1 - gamma) * exp(w_a) / Σ_b exp(w_b) + gamma / K`` and an update adds
    ``eta * ipw_reward_sum / reward_max`` to ``w_a``. Because the update divides by the propensity
    the serving node logged, a batch collected under any (published) version of the policy is an
    unbiased estimate, and batch updates are additive: one batch equals its rows applied one by one.
    An unseen arm starts at ``w = 0``. With ``half_life_ms`` the log-weights shrink towards 0.

    Params per arm: ``[w]`` (the log-weight).

    Parameters
    ----------
    gamma
        Uniform exploration mixed in, in (0, 1].
    eta
        Learning rate on the importance-weighted reward.
    reward_max
        Upper bound of one reward; rewards are divided by it.
    half_life_ms, seed
        See :class:`learners.base.Learner`.

    Examples
    --------
    >>> from learners.batch import Batch
    >>> exp3 = Exp3(gamma=0.1, eta=0.05, seed=7)
    >>> exp3.update(Batch.from_rows([
    ...     {"arm": "a", "trials": 20, "reward_sum": 8, "ipw_reward_sum": 16},
    ...     {"arm": "b", "trials": 20, "reward_sum": 2, "ipw_reward_sum": 4},
    ... ]))
    >>> {arm: round(p, 3) for arm, p in exp3.probabilities(["a", "b"]).items()}
    {'a': 0.631, 'b': 0.369}
    >>> arm, p = exp3.choose(None, ["a", "b"])
    >>> arm, round(p, 3)
    ('a', 0.631)
    """

    FIELDS = ("log_weight",)

    RETUNABLE: ClassVar[tuple[str, ...]] = ("half_life_ms", "gamma")

    def __init__(
        self,
        gamma: float = 0.1,
        *,
        eta: float = 0.01,
        reward_max: float = 1.0,
        half_life_ms: float | None = None,
        seed: int | None = None,
    ) -> None:
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"Exp3: gamma must be in (0, 1]; got {gamma!r}")
        if not eta > 0:
            raise ValueError(f"Exp3: eta must be > 0; got {eta!r}")
        if not reward_max > 0:
            raise ValueError(f"Exp3: reward_max must be > 0; got {reward_max!r}")
        super().__init__(half_life_ms=half_life_ms, seed=seed)
        self.gamma = gamma
        self.eta = eta
        self.reward_max = reward_max

    def _row_values(self, row: ArmStats) -> list[float]:
        return [self.eta * row.ipw_reward_sum / self.reward_max]

    def _config(self) -> dict[str, Any]:
        return {
            "gamma": self.gamma,
            "eta": self.eta,
            "reward_max": self.reward_max,
            "half_life_ms": self.half_life_ms,
        }

    def probabilities(self, arms: Sequence[ArmID]) -> dict[ArmID, float]:
        """Probability of choosing each arm."""
        check_arms(arms, "Exp3.probabilities")
        logw = [self._stats[arm][0] if arm in self._stats else 0.0 for arm in arms]
        top = max(logw)
        w = [math.exp(v - top) for v in logw]
        total = sum(w)
        k = len(arms)
        return {arm: (1 - self.gamma) * wi / total + self.gamma / k for arm, wi in zip(arms, w, strict=True)}

    def choose(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> tuple[ArmID, float]:
        check_arms(arms, "Exp3.choose")
        probs = list(self.probabilities(arms).values())
        u = self._rng.random()
        acc = 0.0
        for i, p in enumerate(probs):
            acc += p
            if u < acc:
                return arms[i], p
        return arms[-1], probs[-1]
