"""ε-greedy on sufficient statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from learners._arm_bandit import ArmBandit
from learners.base import check_arms
from learners.batch import ArmID, ArmStats

__all__ = ["EpsilonGreedy"]


class EpsilonGreedy(ArmBandit):
    """With probability ``ε`` pick an arm uniformly, otherwise the arm with the best mean reward.

    The mean is (initial + delayed reward) / trials; an untried arm has mean ``prior_mean``.
    ``ε`` decays with the total trials ``N`` seen: ``ε_N = epsilon * exp(-decay * N)`` (as River's
    ``EpsilonGreedy``). Propensity of a greedy arm: ``(1 - ε) / ties + ε / K``; of any other arm:
    ``ε / K``.

    Params per arm: ``[n, S]`` (trials, total reward).

    Parameters
    ----------
    epsilon
        Exploration probability, in [0, 1].
    decay
        Decay rate of ``epsilon`` per trial.
    prior_mean
        Mean assumed for an untried arm.
    half_life_ms, seed
        See :class:`learners.base.Learner`.

    Examples
    --------
    >>> from learners.batch import Batch
    >>> eg = EpsilonGreedy(0.2, seed=3)
    >>> eg.update(Batch.from_rows([
    ...     {"arm": "a", "trials": 50, "reward_sum": 5},
    ...     {"arm": "b", "trials": 50, "reward_sum": 9},
    ... ]))
    >>> eg.choose(None, ["a", "b"])
    ('b', 0.9)
    >>> {arm: round(p, 3) for arm, p in eg.probabilities(["a", "b", "c"]).items()}
    {'a': 0.067, 'b': 0.867, 'c': 0.067}
    """

    FIELDS = ("trials", "reward")

    RETUNABLE: ClassVar[tuple[str, ...]] = ("half_life_ms", "epsilon", "decay")

    def __init__(
        self,
        epsilon: float = 0.1,
        *,
        decay: float = 0.0,
        prior_mean: float = 0.0,
        half_life_ms: float | None = None,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"EpsilonGreedy: epsilon must be in [0, 1]; got {epsilon!r}")
        if not decay >= 0:
            raise ValueError(f"EpsilonGreedy: decay must be >= 0; got {decay!r}")
        super().__init__(half_life_ms=half_life_ms, seed=seed)
        self.epsilon = epsilon
        self.decay = decay
        self.prior_mean = prior_mean

    def _row_values(self, row: ArmStats) -> list[float]:
        return [row.trials, row.total_reward]

    def _config(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "decay": self.decay,
            "prior_mean": self.prior_mean,
            "half_life_ms": self.half_life_ms,
        }

    @property
    def current_epsilon(self) -> float:
        """``epsilon`` after decay."""
        if not self.decay:
            return self.epsilon
        return self.epsilon * math.exp(-self.decay * sum(acc[0] for acc in self._stats.values()))

    def _mean(self, arm: ArmID) -> float:
        acc = self._stats.get(arm)
        return acc[1] / acc[0] if acc is not None and acc[0] > 0 else self.prior_mean

    def probabilities(self, arms: Sequence[ArmID]) -> dict[ArmID, float]:
        """Probability of choosing each arm."""
        check_arms(arms, "EpsilonGreedy.probabilities")
        eps = self.current_epsilon
        means = [self._mean(arm) for arm in arms]
        best = max(means)
        n_ties = sum(m == best for m in means)
        return {
            arm: eps / len(arms) + ((1 - eps) / n_ties if m == best else 0.0)
            for arm, m in zip(arms, means, strict=True)
        }

    def choose(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> tuple[ArmID, float]:
        check_arms(arms, "EpsilonGreedy.choose")
        eps = self.current_epsilon
        means = [self._mean(arm) for arm in arms]
        best = max(means)
        ties = [i for i, m in enumerate(means) if m == best]
        if self._rng.random() < eps:
            i = self._rng.randrange(len(arms))
        else:
            i = ties[0] if len(ties) == 1 else self._rng.choice(ties)
        p = eps / len(arms) + ((1 - eps) / len(ties) if means[i] == best else 0.0)
        return arms[i], p
