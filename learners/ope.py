"""Off-policy evaluation from logged (context, action, propensity, reward).

With logged propensity ``p_i = π_0(a_i | x_i)``, target probability ``π_i = π(a_i | x_i)`` and
weight ``w_i = π_i / p_i``:

- IPS: ``mean(w_i r_i)``; unbiased, high variance.
- SNIPS: ``Σ w_i r_i / Σ w_i``; self-normalised, slightly biased, far lower variance.
- Doubly robust: ``mean(q̂_π(x_i) + w_i (r_i - q̂(x_i, a_i)))`` with a reward model ``q̂`` and
  ``q̂_π(x) = Σ_a π(a | x) q̂(x, a)``; unbiased if either the propensities or ``q̂`` are right.

Each estimate comes with a standard error (delta method for SNIPS) and the effective sample size
``(Σ w)² / Σ w²`` of the weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Estimate", "RiverRewardModel", "TabularRewardModel", "doubly_robust", "evaluate", "ips", "snips"]

Policy = Callable[[Mapping[str, Any]], Mapping[Any, float]]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A policy-value estimate."""

    value: float
    stderr: float
    n: int
    ess: float


def _arrays(
    rewards: Sequence[float], propensities: Sequence[float], target: Sequence[float]
) -> tuple[np.ndarray, ...]:
    r, p, t = (np.asarray(v, dtype=float) for v in (rewards, propensities, target))
    if not (r.shape == p.shape == t.shape and r.ndim == 1 and len(r) > 0):
        raise ValueError(
            "ope: rewards, propensities and target probabilities must be equal-length 1-d arrays; "
            f"got shapes {r.shape}, {p.shape}, {t.shape}"
        )
    if np.any(p <= 0) or np.any(p > 1):
        raise ValueError("ope: logged propensities must be in (0, 1]")
    if np.any(t < 0) or np.any(t > 1):
        raise ValueError("ope: target probabilities must be in [0, 1]")
    return r, p, t / p


def _ess(w: np.ndarray) -> float:
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0


def ips(rewards: Sequence[float], propensities: Sequence[float], target: Sequence[float]) -> Estimate:
    """Inverse propensity scoring.

    >>> ips([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5], [1, 0, 0, 1]).value
    0.5
    """
    r, _, w = _arrays(rewards, propensities, target)
    x = w * r
    n = len(x)
    return Estimate(float(x.mean()), float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf, n, _ess(w))


def snips(rewards: Sequence[float], propensities: Sequence[float], target: Sequence[float]) -> Estimate:
    """Self-normalised IPS.

    >>> snips([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5], [1, 0, 0, 1]).value
    0.5
    """
    r, _, w = _arrays(rewards, propensities, target)
    total = float(w.sum())
    if total <= 0:
        raise ValueError("snips: the target policy puts no probability on any logged action")
    value = float(np.sum(w * r)) / total
    stderr = float(np.sqrt(np.sum((w * (r - value)) ** 2))) / total
    return Estimate(value, stderr, len(r), _ess(w))


def doubly_robust(
    rewards: Sequence[float],
    propensities: Sequence[float],
    target: Sequence[float],
    q_logged: Sequence[float],
    q_target: Sequence[float],
) -> Estimate:
    """Doubly robust: ``q_logged[i] = q̂(x_i, a_i)``, ``q_target[i] = Σ_a π(a | x_i) q̂(x_i, a)``.

    >>> doubly_robust([1, 0], [0.5, 0.5], [1, 0], q_logged=[0.6, 0.4], q_target=[0.6, 0.6]).value
    1.0
    """
    r, _, w = _arrays(rewards, propensities, target)
    ql, qt = np.asarray(q_logged, dtype=float), np.asarray(q_target, dtype=float)
    if ql.shape != r.shape or qt.shape != r.shape:
        raise ValueError(
            f"doubly_robust: q_logged and q_target must have shape {r.shape}; got {ql.shape}, {qt.shape}"
        )
    x = qt + w * (r - ql)
    n = len(x)
    return Estimate(float(x.mean()), float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf, n, _ess(w))


class TabularRewardModel:
    """``q̂(x, a)``: mean logged reward per (context key, action), backed off to the action mean.

    >>> logs = [{"context": {"seg": "a"}, "action": "x", "propensity": 0.5, "reward": r} for r in (1, 0, 1)]
    >>> model = TabularRewardModel(key=lambda ctx: ctx["seg"]).fit(logs)
    >>> round(model({"seg": "a"}, "x"), 3), round(model({"seg": "b"}, "x"), 3)
    (0.667, 0.667)
    """

    def __init__(self, key: Callable[[Mapping[str, Any]], Hashable], *, prior_n: float = 1.0) -> None:
        self.key = key
        self.prior_n = prior_n
        self._cells: dict[tuple[Hashable, Hashable], list[float]] = {}
        self._actions: dict[Hashable, list[float]] = {}
        self._total = [0.0, 0.0]

    def fit(self, logs: Iterable[Mapping[str, Any]]) -> TabularRewardModel:
        for row in logs:
            k, a, r = self.key(row["context"]), row["action"], float(row["reward"])
            for acc in (
                self._cells.setdefault((k, a), [0.0, 0.0]),
                self._actions.setdefault(a, [0.0, 0.0]),
                self._total,
            ):
                acc[0] += 1.0
                acc[1] += r
        return self

    def __call__(self, context: Mapping[str, Any], action: Hashable) -> float:
        n_t, s_t = self._total
        base = s_t / n_t if n_t else 0.0
        n_a, s_a = self._actions.get(action, [0.0, 0.0])
        action_mean = (s_a + self.prior_n * base) / (n_a + self.prior_n)
        n, s = self._cells.get((self.key(context), action), [0.0, 0.0])
        return (s + self.prior_n * action_mean) / (n + self.prior_n)


class RiverRewardModel:
    """``q̂(x, a)``: a River linear regressor (``river.linear_model.LinearRegression``) of the reward
    on the action, and on the context's numeric values crossed with the action (a line per
    action), learned online from the logs; the doubly robust estimator's reward model.

    Offline evaluation, off the job's path: it learns one logged row at a time (``epochs`` passes).
    Context values that are labels (a segment) enter as indicators ``key=value``; lists and other
    values are left out.

    >>> def reward(x, a):
    ...     return 2 * x if a == "u" else 1 - x
    >>> logs = [{"context": {"x": x}, "action": a, "propensity": 0.5, "reward": reward(x, a)}
    ...         for x in (0.0, 0.25, 0.5, 0.75, 1.0) for a in ("u", "v")] * 40
    >>> model = RiverRewardModel(seed=0).fit(logs)
    >>> round(model({"x": 0.5}, "u"), 1), round(model({"x": 1.0}, "v"), 1)
    (1.0, 0.0)
    """

    def __init__(
        self, *, learning_rate: float = 0.05, l2: float = 0.0, epochs: int = 3, seed: int = 0
    ) -> None:
        from river import linear_model, optim

        self.epochs = epochs
        self._seed = seed
        self._model = linear_model.LinearRegression(
            optimizer=optim.SGD(learning_rate), l2=l2, intercept_lr=learning_rate
        )

    @staticmethod
    def _features(context: Mapping[str, Any], action: Hashable) -> dict[str, float]:
        out: dict[str, float] = {f"a={action}": 1.0}
        for key, value in context.items():
            if isinstance(value, str | bool):
                out[f"a={action}|{key}={value}"] = 1.0
            elif isinstance(value, int | float) and math.isfinite(value):
                out[f"a={action}|{key}"] = float(value)
        return out

    def fit(self, logs: Iterable[Mapping[str, Any]]) -> RiverRewardModel:
        rows = list(logs)
        order = np.random.default_rng(self._seed)
        for _ in range(self.epochs):
            for i in order.permutation(len(rows)).tolist():
                row = rows[i]
                self._model.learn_one(self._features(row["context"], row["action"]), float(row["reward"]))
        return self

    def __call__(self, context: Mapping[str, Any], action: Hashable) -> float:
        return float(self._model.predict_one(self._features(context, action)))


def evaluate(
    logs: Sequence[Mapping[str, Any]],
    policy: Policy,
    reward_model: Callable[[Mapping[str, Any], Any], float] | None = None,
) -> dict[str, Estimate]:
    """IPS, SNIPS and (with ``reward_model``) DR of ``policy`` on logs of
    ``{"context", "action", "propensity", "reward"}``; ``policy(context)`` maps actions to probabilities.

    >>> pairs = [("x", 1), ("y", 0)] * 5
    >>> logs = [{"context": {}, "action": a, "propensity": 0.5, "reward": r} for a, r in pairs]
    >>> {k: e.value for k, e in evaluate(logs, lambda ctx: {"x": 1.0, "y": 0.0}).items()}
    {'ips': 1.0, 'snips': 1.0}
    """
    rewards, props, target, q_logged, q_target = [], [], [], [], []
    for row in logs:
        probs = policy(row["context"])
        rewards.append(float(row["reward"]))
        props.append(float(row["propensity"]))
        target.append(float(probs.get(row["action"], 0.0)))
        if reward_model is not None:
            q_logged.append(reward_model(row["context"], row["action"]))
            q_target.append(sum(p * reward_model(row["context"], a) for a, p in probs.items() if p > 0))
    out = {"ips": ips(rewards, props, target), "snips": snips(rewards, props, target)}
    if reward_model is not None:
        out["dr"] = doubly_robust(rewards, props, target, q_logged, q_target)
    return out
