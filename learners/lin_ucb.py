"""LinUCB, disjoint variant, from Σ x xᵀ and Σ r x."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from learners.base import Learner, check_arms, compact
from learners.batch import ArmID, Batch

__all__ = ["LinUCB"]


class LinUCB(Learner):
    """Disjoint LinUCB (Li et al., 2010): one ridge regression of reward on context per arm.

    For arm ``a``: ``A_a = ridge * I + Σ x xᵀ`` (initial rows), ``b_a = Σ r x`` (initial and delayed
    rows), ``θ_a = A_a⁻¹ b_a``; choose ``argmax θ_aᵀx + alpha * sqrt(xᵀ A_a⁻¹ x)``. An unseen arm
    has ``θ = 0`` and the widest bound. Deterministic: propensity ``1 / number of tied arms``.

    Unlike River's ``LinUCBDisjoint`` (which passes ``burn_in`` positionally into
    ``reward_scaler``), every argument here is stored under its own name.

    Params: ``"arms"``, ``"n"`` (trials per arm), ``"xx"`` (dense d×d per arm, row-major nested
    lists) and ``"rx"`` (d per arm), in the order of ``features``.

    Parameters
    ----------
    features
        Names of the context features, in the order used by ``xx`` and ``rx``.
    alpha
        Width of the confidence bonus.
    ridge
        Ridge penalty (the prior precision).
    half_life_ms, seed
        See :class:`learners.base.Learner`.

    Examples
    --------
    >>> from learners.batch import Batch
    >>> lin = LinUCB(["bias", "young"], alpha=0.5, seed=0)
    >>> events = [
    ...     {"arm": "a", "reward": 1.0, "context": {"bias": 1, "young": 1}},
    ...     {"arm": "a", "reward": 0.0, "context": {"bias": 1, "young": 0}},
    ...     {"arm": "b", "reward": 1.0, "context": {"bias": 1, "young": 0}},
    ...     {"arm": "b", "reward": 0.0, "context": {"bias": 1, "young": 1}},
    ... ] * 20
    >>> lin.update(Batch.from_events(events, features=lin.features))
    >>> lin.choose({"bias": 1, "young": 1}, ["a", "b"])
    ('a', 1.0)
    >>> lin.choose({"bias": 1, "young": 0}, ["a", "b"])
    ('b', 1.0)
    """

    USES_CONTEXT: ClassVar[bool] = True

    RETUNABLE: ClassVar[tuple[str, ...]] = ("half_life_ms", "alpha")

    def __init__(
        self,
        features: Sequence[str],
        *,
        alpha: float = 1.0,
        ridge: float = 1.0,
        half_life_ms: float | None = None,
        seed: int | None = None,
    ) -> None:
        if isinstance(features, str) or len(features) == 0:
            raise ValueError(f"LinUCB: features must be a non-empty list of names; got {features!r}")
        if not alpha >= 0:
            raise ValueError(f"LinUCB: alpha must be >= 0; got {alpha!r}")
        if not ridge > 0:
            raise ValueError(f"LinUCB: ridge must be > 0; got {ridge!r}")
        super().__init__(half_life_ms=half_life_ms, seed=seed)
        self.features = list(features)
        self.alpha = alpha
        self.ridge = ridge
        self._n: dict[ArmID, float] = {}
        self._xx: dict[ArmID, np.ndarray] = {}
        self._rx: dict[ArmID, np.ndarray] = {}
        self._cache: dict[tuple[ArmID, ...], tuple[np.ndarray, np.ndarray]] = {}

    @property
    def dim(self) -> int:
        return len(self.features)

    def _config(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "alpha": self.alpha,
            "ridge": self.ridge,
            "half_life_ms": self.half_life_ms,
        }

    def _learn(self, batch: Batch, weight: float) -> None:
        d = self.dim
        for row in batch.rows:
            if row.xx is None or row.rx is None:
                if row.trials or row.total_reward:
                    raise ValueError(f"LinUCB.update: row for arm {row.arm!r} has no xx/rx")
                continue
            if row.dim != d:
                raise ValueError(
                    f"LinUCB.update: arm {row.arm!r} has context dimension {row.dim}; expected {d}"
                )
            if row.arm not in self._n:
                self._n[row.arm] = 0.0
                self._xx[row.arm] = np.zeros((d, d))
                self._rx[row.arm] = np.zeros(d)
            self._n[row.arm] += weight * row.trials
            self._xx[row.arm] += weight * np.asarray(row.xx).reshape(d, d)
            self._rx[row.arm] += weight * np.asarray(row.rx)

    def _scale(self, factor: float) -> None:
        for arm in self._n:
            self._n[arm] *= factor
            self._xx[arm] *= factor
            self._rx[arm] *= factor

    def _state(self) -> dict[str, Any]:
        return {
            "arms": list(self._n),
            "n": [compact(v) for v in self._n.values()],
            "xx": [[[compact(v) for v in r] for r in m.tolist()] for m in self._xx.values()],
            "rx": [[compact(v) for v in m.tolist()] for m in self._rx.values()],
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        d = self.dim
        arms = state["arms"]
        self._n, self._xx, self._rx = {}, {}, {}
        for arm, n, xx, rx in zip(arms, state["n"], state["xx"], state["rx"], strict=True):
            xx_m, rx_v = np.array(xx, dtype=float), np.array(rx, dtype=float)
            if xx_m.shape != (d, d) or rx_v.shape != (d,):
                raise ValueError(
                    f"LinUCB.from_params: arm {arm!r} needs xx of shape ({d}, {d}) and rx of shape ({d},); "
                    f"got {xx_m.shape} and {rx_v.shape}"
                )
            self._n[arm], self._xx[arm], self._rx[arm] = float(n), xx_m, rx_v

    def _invalidate(self) -> None:
        self._cache.clear()

    def matrices(self, arm: ArmID) -> tuple[np.ndarray, np.ndarray]:
        """``(A, b)`` of one arm: ``ridge * I + Σ x xᵀ`` and ``Σ r x``."""
        d = self.dim
        xx = self._xx.get(arm, np.zeros((d, d)))
        return self.ridge * np.eye(d) + xx, self._rx.get(arm, np.zeros(d)).copy()

    def missing_context(self, context: Mapping[str, Any] | Sequence[float] | None) -> list[str]:
        """None when ``context`` holds the feature vector (``"features"``: the impression's
        ``features`` array, whose first values the job learned on, in this learner's order) or
        every feature by name; else the feature names it lacks.

        >>> LinUCB(["f1", "f2"]).missing_context({"f1": 0.5, "segment": "s"})
        ['f2']
        >>> LinUCB(["f1", "f2"]).missing_context({"features": [0.5, 1.0, 3.0]})
        []
        """
        if context is None:
            return list(self.features)
        if not isinstance(context, Mapping):
            return []
        vector = context.get("features")
        if vector is not None and not isinstance(vector, str | bytes) and hasattr(vector, "__len__"):
            if len(vector) >= self.dim:
                return []
        return [f for f in self.features if f not in context]

    def _vector(self, context: Mapping[str, Any] | Sequence[float] | None) -> np.ndarray:
        if context is None:
            raise ValueError("LinUCB.choose: context is required; got None")
        if isinstance(context, Mapping):
            missing = self.missing_context(context)
            if missing:
                raise ValueError(
                    f"LinUCB.choose: context lacks feature(s) {missing}; got keys {sorted(context)}"
                )
            if all(f in context for f in self.features):
                return np.array([float(context[f]) for f in self.features])
            return np.array([float(v) for v in list(context["features"])[: self.dim]])
        x = np.asarray(context, dtype=float)
        if x.shape != (self.dim,):
            raise ValueError(f"LinUCB.choose: context must have {self.dim} values; got shape {x.shape}")
        return x

    def _solved(self, arms: tuple[ArmID, ...]) -> tuple[np.ndarray, np.ndarray]:
        cached = self._cache.get(arms)
        if cached is None:
            if len(self._cache) > 64:
                self._cache.clear()
            a_inv = np.stack([np.linalg.inv(self.matrices(arm)[0]) for arm in arms])
            b = np.stack([self.matrices(arm)[1] for arm in arms])
            theta = np.einsum("kij,kj->ki", a_inv, b)
            cached = self._cache[arms] = (a_inv, theta)
        return cached

    def bounds(
        self, context: Mapping[str, Any] | Sequence[float], arms: Sequence[ArmID]
    ) -> dict[ArmID, float]:
        """Upper confidence bound of each arm for ``context``."""
        check_arms(arms, "LinUCB.bounds")
        x = self._vector(context)
        a_inv, theta = self._solved(tuple(arms))
        width = np.sqrt(np.maximum(np.einsum("i,kij,j->k", x, a_inv, x), 0.0))
        return dict(zip(arms, (theta @ x + self.alpha * width).tolist(), strict=True))

    def choose(
        self, context: Mapping[str, Any] | Sequence[float] | None, arms: Sequence[ArmID]
    ) -> tuple[ArmID, float]:
        check_arms(arms, "LinUCB.choose")
        x = self._vector(context)
        bounds = self.bounds(x.tolist(), arms)
        best = max(bounds.values())
        ties = [arm for arm in arms if bounds[arm] == best]
        return (ties[0] if len(ties) == 1 else self._rng.choice(ties)), 1.0 / len(ties)
