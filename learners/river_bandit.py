"""Any of River's bandit policies as an agent's learner, fed the job's sufficient statistics.

River's policies (``river.bandit``) learn one reward at a time: ``policy.update(arm, reward)``
updates the arm's reward object (a ``stats.Mean``, or a ``proba.Beta`` for Thompson sampling)
and the counts. The job hands a learner one micro-batch of sums per arm instead. This adapter
merges them into River's own objects, exactly: an arm's ``Mean`` takes ``+=
Mean._from_state(n, S / n)`` (River's merge), its ``Beta`` adds ``S`` successes and ``n - S``
failures, and the counts go up by ``n``. No event is replayed.

So, after the same data, the policy it builds has the statistics of the River policy fed event
by event (to float rounding of the means), and, built with the same seed, pulls the same arms:
River's ``pull`` is what chooses. For Thompson sampling the arms' samplers are seeded in the
order in which arms first appear (River's own rule), which the adapter keeps: the order of its
arms is the order of first appearance in the batches.

River returns an arm, not its probability; every logged decision needs one, so ``choose``
computes the propensity of the arm River pulled from the same state:

- ``EpsilonGreedy``: ``ε/K`` plus ``1 - ε`` for the greedy arm (the first of the highest means,
  as River's ``max`` picks it; ``ε`` after River's decay);
- ``UCB``: ``1 / (number of arms tied at the highest bound)``, River's tie-break being uniform;
- ``ThompsonSampling`` (Beta): the probability that the arm's posterior draw is the largest,
  by quadrature (``learners._argmax``, within ``propensity_error_bound``);
- ``BayesUCB`` (its Beta posteriors take the sums too): ``1 / (number of arms tied at the highest
  quantile)``;
- ``RandomPolicy``: ``1 / K``.

Params are JSON (per arm ``[n, S]``, and the policy's arguments), never a pickled River object:
the policy is rebuilt from them. Exp3 is not offered: River's Exp3 weighs each reward by the
probabilities at the moment of its update, which sums over a micro-batch cannot reproduce.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from river import bandit, proba, stats

from learners._argmax import argmax_probabilities, error_bound
from learners._arm_bandit import ArmBandit
from learners.base import check_arms
from learners.batch import ArmID, ArmStats

__all__ = ["RiverBandit", "POLICIES"]

POLICIES = ("EpsilonGreedy", "UCB", "ThompsonSampling", "BayesUCB", "RandomPolicy")


class RiverBandit(ArmBandit):
    """A ``river.bandit`` policy over micro-batch statistics; see the module doc.

    Parameters
    ----------
    policy
        ``"EpsilonGreedy"``, ``"UCB"``, ``"ThompsonSampling"`` (with a Beta prior: rewards in
        [0, 1], e.g. clicks), ``"BayesUCB"`` (rewards in [0, 1]) or ``"RandomPolicy"``.
    epsilon, decay
        ``EpsilonGreedy``'s exploration rate and its decay (River's arguments).
    delta
        ``UCB``'s bonus width (River's argument).
    prior_alpha, prior_beta
        ``ThompsonSampling``'s ``proba.Beta`` prior.
    grid
        Quadrature cells of Thompson sampling's propensities.
    half_life_ms, seed
        See :class:`learners.base.Learner`; the River policy is seeded from the seed and the
        version, so two copies of the same params choose alike.

    Examples
    --------
    >>> from learners.batch import Batch
    >>> learner = RiverBandit("EpsilonGreedy", epsilon=0.1, seed=7)
    >>> learner.update(Batch.from_rows([
    ...     {"arm": "a", "trials": 100, "reward_sum": 30},
    ...     {"arm": "b", "trials": 100, "reward_sum": 10},
    ... ]))
    >>> learner.river_policy()._rewards["a"].get()  # River's own Mean, merged from the sums
    0.3
    >>> {arm: round(p, 3) for arm, p in learner.probabilities(["a", "b"]).items()}
    {'a': 0.95, 'b': 0.05}
    """

    FIELDS = ("trials", "reward")
    RETUNABLE: ClassVar[tuple[str, ...]] = ("half_life_ms", "epsilon", "decay", "delta")

    def __init__(
        self,
        policy: str,
        *,
        epsilon: float = 0.1,
        decay: float = 0.0,
        delta: float = 1.0,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
        grid: int = 1024,
        half_life_ms: float | None = None,
        seed: int | None = None,
    ) -> None:
        name = type(self).__name__
        if policy not in POLICIES:
            raise ValueError(f"{name}: policy must be one of {list(POLICIES)}; got {policy!r}")
        if not 0 <= epsilon <= 1:
            raise ValueError(f"{name}: epsilon must be in [0, 1]; got {epsilon!r}")
        if not decay >= 0:
            raise ValueError(f"{name}: decay must be >= 0; got {decay!r}")
        if not delta > 0:
            raise ValueError(f"{name}: delta must be > 0; got {delta!r}")
        if not (prior_alpha > 0 and prior_beta > 0):
            raise ValueError(
                f"{name}: prior_alpha and prior_beta must be > 0; got {prior_alpha!r}, {prior_beta!r}"
            )
        if not isinstance(grid, int) or grid < 16:
            raise ValueError(f"{name}: grid must be an int >= 16; got {grid!r}")
        super().__init__(half_life_ms=half_life_ms, seed=seed)
        self.policy = policy
        self.epsilon, self.decay, self.delta = epsilon, decay, delta
        self.prior_alpha, self.prior_beta = prior_alpha, prior_beta
        self.grid = grid
        self._river: Any = None  # the River policy of this version (built on demand)

    def _row_values(self, row: ArmStats) -> list[float]:
        return [row.trials, row.total_reward]

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"policy": self.policy}
        if self.policy == "EpsilonGreedy":
            config |= {"epsilon": self.epsilon, "decay": self.decay}
        elif self.policy == "UCB":
            config |= {"delta": self.delta}
        elif self.policy in ("BayesUCB", "RandomPolicy"):
            pass
        else:
            config |= {"prior_alpha": self.prior_alpha, "prior_beta": self.prior_beta, "grid": self.grid}
        return config | {"half_life_ms": self.half_life_ms}

    def _invalidate(self) -> None:
        self._river = None

    @property
    def river_seed(self) -> int:
        """The seed of the River policy this version serves with."""
        return self._seed * 1_000_003 + self._version

    # -- the River policy ---------------------------------------------------------------------

    def _empty_policy(self, seed: int) -> Any:
        if self.policy == "EpsilonGreedy":
            return bandit.EpsilonGreedy(self.epsilon, decay=self.decay, seed=seed)
        if self.policy == "UCB":
            return bandit.UCB(delta=self.delta, seed=seed)
        if self.policy == "BayesUCB":
            return bandit.BayesUCB(seed=seed)
        if self.policy == "RandomPolicy":
            return bandit.RandomPolicy(seed=seed)
        prior: Any = proba.Beta(self.prior_alpha, self.prior_beta)  # type: ignore[arg-type]  # floats work
        return bandit.ThompsonSampling(reward_obj=prior, seed=seed)

    def river_policy(self, seed: int | None = None) -> Any:
        """The River policy holding this learner's statistics, merged into River's objects; seeded
        with ``seed`` (default: this version's, cached for ``choose``)."""
        if seed is None and self._river is not None:
            return self._river
        policy = self._empty_policy(self.river_seed if seed is None else seed)
        for arm, (n, s) in self._stats.items():  # in order of first appearance
            if n <= 0:
                continue  # never pulled, as far as River can tell
            reward: Any = policy._rewards[arm]  # River's factory: a Thompson arm takes its seed here
            if self.policy == "ThompsonSampling":  # a proba.Beta
                reward.alpha += s
                reward.beta += max(n - s, 0.0)
            else:
                reward += stats.Mean._from_state(n, s / n)
            if self.policy == "BayesUCB":
                posterior = policy._posteriors[arm]
                posterior.alpha += s
                posterior.beta += max(n - s, 0.0)
            policy._counts[arm] += n
            policy._n += n
        if self.policy == "UCB" and 0 < policy._n < 1:
            # Discounted evidence (a half-life, a drift) can leave less than one trial in all:
            # River's bound takes log(n), which must not turn negative. Event by event, River
            # never gets there.
            policy._n = 1.0
        if seed is None:
            self._river = policy
        return policy

    # -- propensities -------------------------------------------------------------------------

    def probabilities(self, arms: Sequence[ArmID]) -> dict[ArmID, float]:
        """Probability that River's pull returns each arm, from this version's state."""
        check_arms(arms, "RiverBandit.probabilities")
        policy = self.river_policy()
        k = len(arms)
        if self.policy == "EpsilonGreedy":
            eps = policy.current_epsilon
            means = [policy._rewards[a].get() if a in policy._rewards else 0.0 for a in arms]
            greedy = int(np.argmax(means))  # the first of the highest, as River's max()
            return {a: eps / k + (1 - eps) * (i == greedy) for i, a in enumerate(arms)}
        if self.policy == "RandomPolicy":
            return {a: 1.0 / k for a in arms}
        if self.policy == "BayesUCB":
            indices = [policy.compute_index(a) for a in arms]
            top = max(indices)
            return {
                a: (1.0 / indices.count(top) if i == top else 0.0) for a, i in zip(arms, indices, strict=True)
            }
        if self.policy == "UCB":
            bounds = []
            for a in arms:
                reward = policy._rewards.get(a)
                if reward is None:
                    bounds.append(float("inf"))
                else:
                    bounds.append(
                        reward.get() + self.delta * np.sqrt(2 * np.log(policy._n) / policy._counts[a])
                    )
            top = max(bounds)
            tied = [b == top for b in bounds]
            return {a: (1.0 / sum(tied) if t else 0.0) for a, t in zip(arms, tied, strict=True)}
        alphas, betas = [], []
        for a in arms:
            n, s = self._stats.get(a, (0.0, 0.0))
            alphas.append(self.prior_alpha + (s if n > 0 else 0.0))
            betas.append(self.prior_beta + (max(n - s, 0.0) if n > 0 else 0.0))
        probs = argmax_probabilities("beta", np.array(alphas), np.array(betas), grid=self.grid)
        return dict(zip(arms, probs.tolist(), strict=True))

    @property
    def propensity_error_bound(self) -> float:
        """Bound on a Thompson propensity's error (0 for the other policies: theirs are exact)."""
        return error_bound(self.grid, max(2, len(self._stats))) if self.policy == "ThompsonSampling" else 0.0

    def choose(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> tuple[ArmID, float]:
        check_arms(arms, "RiverBandit.choose")
        probabilities = self.probabilities(arms)  # from the state before River's pull touches it
        arm = self.river_policy().pull(list(arms))
        return arm, probabilities[arm]
