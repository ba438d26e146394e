"""Thompson sampling with a Beta (binary rewards) or Gaussian (real-valued rewards) posterior."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from river import proba

from learners._argmax import argmax_probabilities, error_bound
from learners._arm_bandit import ArmBandit
from learners.base import check_arms
from learners.batch import ArmID, ArmStats

__all__ = ["ThompsonSampling"]


class ThompsonSampling(ArmBandit):
    """Thompson sampling from sufficient statistics.

    ``dist="beta"``: rewards in [0, 1] (click = 1). The posterior of an arm is
    ``Beta(prior_alpha + S, prior_beta + max(n - S, 0))`` with ``n`` trials and ``S`` the initial
    plus delayed reward: conversion credit raises ``S`` without adding trials.

    ``dist="gaussian"``: real-valued rewards. The posterior of an arm's mean reward is
    ``N(m, s^2 / (prior_n + n))`` with ``m = (prior_n * prior_mean + S) / (prior_n + n)`` and
    ``s^2 = (prior_n * prior_var + Σ (r - r̄)^2) / (prior_n + n)``, the squared deviations taken over
    the initial rewards.

    ``choose`` computes the probability that each arm's posterior draw is the largest (the exact
    Thompson-sampling propensity, by quadrature, within ``error_bound`` of the truth; cached per
    version and arm set) and draws the arm from those probabilities, so the returned propensity is
    exactly the probability with which the arm was drawn.

    Params per arm: ``[n, S]`` for beta, ``[n, S_initial, Σr², S_delayed]`` for gaussian.

    Parameters
    ----------
    dist
        ``"beta"`` or ``"gaussian"``.
    prior_alpha, prior_beta
        Beta prior pseudo-counts.
    prior_mean, prior_var, prior_n
        Gaussian prior: mean, reward variance and their weight in pseudo-observations.
    grid
        Quadrature cells for the propensities; error per arm ``<= (K+1) / (2 grid)`` roughly.
    half_life_ms, seed
        See :class:`learners.base.Learner`.

    Examples
    --------
    >>> from learners.batch import Batch
    >>> ts = ThompsonSampling(seed=42)
    >>> ts.update(Batch.from_rows([
    ...     {"arm": "a", "trials": 100, "reward_sum": 10},
    ...     {"arm": "b", "trials": 100, "reward_sum": 2, "delayed_sum": 0.5},
    ... ]))
    >>> ts.posterior_params("a")
    (11.0, 91.0)
    >>> ts.posterior("a").mode  # a River distribution
    0.1
    >>> arm, p = ts.choose(None, ["a", "b"])
    >>> arm, round(p, 3)
    ('a', 0.984)
    >>> # An unseen arm gets the prior: Beta(1, 1) is optimistic for a CTR near 0.1.
    >>> {arm: round(p, 2) for arm, p in ts.probabilities(["a", "b", "new"]).items()}
    {'a': 0.11, 'b': 0.0, 'new': 0.89}
    """

    def __init__(
        self,
        dist: str = "beta",
        *,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
        prior_mean: float = 0.0,
        prior_var: float = 1.0,
        prior_n: float = 1.0,
        grid: int = 1024,
        half_life_ms: float | None = None,
        seed: int | None = None,
    ) -> None:
        if dist not in ("beta", "gaussian"):
            raise ValueError(f"ThompsonSampling: dist must be 'beta' or 'gaussian'; got {dist!r}")
        for name, value in (
            ("prior_alpha", prior_alpha),
            ("prior_beta", prior_beta),
            ("prior_var", prior_var),
            ("prior_n", prior_n),
        ):
            if not value > 0:
                raise ValueError(f"ThompsonSampling: {name} must be > 0; got {value!r}")
        if not isinstance(grid, int) or grid < 16:
            raise ValueError(f"ThompsonSampling: grid must be an int >= 16; got {grid!r}")
        super().__init__(half_life_ms=half_life_ms, seed=seed)
        self.dist = dist
        self.prior_alpha = prior_alpha
        self.prior_beta = prior_beta
        self.prior_mean = prior_mean
        self.prior_var = prior_var
        self.prior_n = prior_n
        self.grid = grid
        self._cache: dict[tuple[ArmID, ...], tuple[list[float], list[float]]] = {}

    def _fields(self) -> tuple[str, ...]:
        if self.dist == "beta":
            return ("trials", "reward")
        return ("trials", "reward_sum", "reward_sq_sum", "delayed_sum")

    def _row_values(self, row: ArmStats) -> list[float]:
        if self.dist == "beta":
            return [row.trials, row.total_reward]
        return [row.trials, row.reward_sum, row.reward_sq_sum, row.delayed_sum]

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"dist": self.dist}
        if self.dist == "beta":
            config |= {"prior_alpha": self.prior_alpha, "prior_beta": self.prior_beta}
        else:
            config |= {"prior_mean": self.prior_mean, "prior_var": self.prior_var, "prior_n": self.prior_n}
        return config | {"grid": self.grid, "half_life_ms": self.half_life_ms}

    def _invalidate(self) -> None:
        self._cache.clear()

    def posterior_params(self, arm: ArmID) -> tuple[float, float]:
        """``(alpha, beta)`` for beta, ``(mean, std)`` of the mean reward for gaussian."""
        acc = self._stats.get(arm)
        if self.dist == "beta":
            n, s = acc if acc is not None else (0.0, 0.0)
            return self.prior_alpha + s, self.prior_beta + max(n - s, 0.0)
        n, s, ss, d = acc if acc is not None else (0.0, 0.0, 0.0, 0.0)
        weight = self.prior_n + n
        mean = (self.prior_n * self.prior_mean + s + d) / weight
        dev = max(ss - s * s / n, 0.0) if n > 0 else 0.0
        var = (self.prior_n * self.prior_var + dev) / weight
        return mean, math.sqrt(var / weight)

    def posterior(self, arm: ArmID) -> proba.Beta | proba.Gaussian:
        """The posterior as a River distribution (for inspection; not used on the hot path)."""
        p1, p2 = self.posterior_params(arm)
        if self.dist == "beta":
            return proba.Beta(p1, p2)  # type: ignore[arg-type]
        # River's Gaussian from (count, mean, M2, ddof): variance = M2 / (count - ddof) = p2 ** 2.
        return proba.Gaussian._from_state(2, p1, p2**2, 1)

    def probabilities(self, arms: Sequence[ArmID]) -> dict[ArmID, float]:
        """Probability that each arm is chosen (its posterior draw is the largest)."""
        check_arms(arms, "ThompsonSampling.probabilities")
        probs, _ = self._probs(tuple(arms))
        return dict(zip(arms, probs, strict=True))

    @property
    def propensity_error_bound(self) -> float:
        """Bound on the propensity error for the largest arm set seen so far (at least two arms)."""
        return error_bound(self.grid, max(2, len(self._stats)))

    def _probs(self, arms: tuple[ArmID, ...]) -> tuple[list[float], list[float]]:
        cached = self._cache.get(arms)
        if cached is None:
            if len(self._cache) > 64:
                self._cache.clear()
            params = np.array([self.posterior_params(arm) for arm in arms])
            probs = argmax_probabilities(self.dist, params[:, 0], params[:, 1], grid=self.grid).tolist()
            cached = self._cache[arms] = (probs, list(itertools.accumulate(probs)))
        return cached

    def choose(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> tuple[ArmID, float]:
        check_arms(arms, "ThompsonSampling.choose")
        probs, cum = self._probs(tuple(arms))
        i = min(bisect.bisect_right(cum, self._rng.random() * cum[-1]), len(arms) - 1)
        return arms[i], probs[i]
