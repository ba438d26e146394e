"""Reward drift per key: River's Page-Hinkley test on the key's mean reward, batch by batch.

A key's micro-batches are pooled until they hold ``window_trials`` trials; each pool gives one
observation, its mean *initial* reward per trial (click, and the credit known when the click
window closed). Delayed credit is left out: it comes for impressions served up to the lookback
before, in batches without trials, so it would make a pool's mean depend on when conversions
happen to arrive, and the batches carry no sum of its squares. River's ``drift.PageHinkley``, in
mode ``down``, watches those observations: it fires when the mean reward falls by more than
``delta`` standard errors of a pool for long enough to gather ``threshold`` of them. The
standard error comes from a ``river.stats.Var`` of the initial rewards per trial, merged from the
batches' sums of them and of their squares; the detector's ``delta`` and ``threshold`` follow it.
Rises are not drift: a learner that finds better arms raises its reward.

A key's first ``warmup_ms`` of event time are not watched: a click's reward row comes at the
click, an unclicked impression's only when its click window closes, so a new key's first hour
of rows is all clicks, and the fall that follows is no drift. Keep ``warmup_ms`` at least
``attribution.click_window_ms``.

On drift the learner keeps ``discount`` of its evidence (``Learner.discount``): what it learned
before the change weighs little against what comes after. The job counts drifts in the metric
``adloop.learner_drifts`` and writes a record per drift to the drift topic.

The state is JSON, in the operator's keyed state next to the learner's params (never pickled):
the detector's sums and the pool.

>>> guard = DriftGuard(window_trials=100, warmup_ms=0)
>>> from learners.batch import ArmStats, Batch
>>> def batch(ctr):
...     return Batch((ArmStats("a", trials=100, reward_sum=100 * ctr, reward_sq_sum=100 * ctr),))
>>> any(guard.observe(batch(0.10)) for _ in range(50))
False
>>> [guard.observe(batch(0.02)) for _ in range(4)]
[False, False, False, True]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from river import drift, stats

from learners.batch import Batch

__all__ = ["DriftGuard", "DriftSettings"]


@dataclass(frozen=True)
class DriftSettings:
    """``learners.<agent>.drift`` in the config; see the module doc.

    >>> DriftSettings.from_mapping({"threshold": "8"}).threshold
    8.0
    >>> DriftSettings.from_mapping({"discount": 2})
    Traceback (most recent call last):
    ...
    ValueError: config key 'drift.discount': expected a number in (0, 1], found 2.0
    """

    window_trials: float = 200.0
    delta: float = 0.5
    threshold: float = 8.0  # standard errors: about one false alarm in 5,000 pools of a steady key
    discount: float = 0.1
    min_instances: int = 5
    warmup_ms: int = 3_600_000

    def __post_init__(self) -> None:
        for name, lo, hi in (
            ("window_trials", 1.0, math.inf),
            ("delta", 0.0, math.inf),
            ("threshold", 0.0, math.inf),
            ("discount", 0.0, 1.0),
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and lo < value <= hi) and not (
                name == "delta" and value == 0
            ):
                bounds = f"({lo:g}, {hi:g}]" if hi < math.inf else f"> {lo:g}"
                raise ValueError(f"config key 'drift.{name}': expected a number in {bounds}, found {value!r}")
        if not isinstance(self.warmup_ms, int) or self.warmup_ms < 0:
            found = self.warmup_ms
            raise ValueError(f"config key 'drift.warmup_ms': expected an integer >= 0 (ms), found {found!r}")
        if not isinstance(self.min_instances, int) or self.min_instances < 1:
            raise ValueError(
                f"config key 'drift.min_instances': expected an integer >= 1, found {self.min_instances!r}"
            )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> DriftSettings:
        if not isinstance(mapping, Mapping):
            raise ValueError(f"config key 'drift': expected a mapping, found {mapping!r}")
        known = {"window_trials", "delta", "threshold", "discount", "min_instances", "warmup_ms"}
        values: dict[str, Any] = {}
        for key, raw in mapping.items():
            if key not in known:
                raise ValueError(f"config key 'drift.{key}': expected one of {sorted(known)}, found {key!r}")
            try:
                values[key] = int(raw) if key in ("min_instances", "warmup_ms") else float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"config key 'drift.{key}': expected a number, found {raw!r}") from None
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        return {
            "window_trials": self.window_trials,
            "delta": self.delta,
            "threshold": self.threshold,
            "discount": self.discount,
            "min_instances": self.min_instances,
            "warmup_ms": self.warmup_ms,
        }


class DriftGuard:
    """The drift detector of one key; ``observe`` each micro-batch, True when drift fires."""

    def __init__(self, settings: DriftSettings | None = None, **overrides: Any) -> None:
        self.settings = settings or DriftSettings(**overrides)
        s = self.settings
        self._detector = drift.PageHinkley(
            min_instances=s.min_instances, delta=s.delta, threshold=s.threshold, mode="down"
        )
        self._pool = [0.0, 0.0, 0.0]  # trials, reward sum, reward square sum
        self._variance = stats.Var()  # of the rewards per trial, over every pool watched so far
        self._start: int | None = None  # event time of the key's first micro-batch
        self.drifts = 0

    def observe(self, batch: Batch) -> bool:
        """Pool the batch; when the pool is full, feed one observation; True if drift fires."""
        if self._start is None:
            self._start = batch.window_end
        if batch.window_end < self._start + self.settings.warmup_ms:
            return False  # warming up: not a reward row of the key is representative yet
        pool = self._pool
        for row in batch.rows:
            pool[0] += row.trials
            pool[1] += row.reward_sum
            pool[2] += row.reward_sq_sum
        if pool[0] < self.settings.window_trials:
            return False
        n, s, ss = pool
        self._pool = [0.0, 0.0, 0.0]
        mean = s / n
        self._variance += _var(n, mean, max(ss - n * mean * mean, 0.0))
        # The standard error of a full pool (a larger pool is only less noisy).
        se = math.sqrt(max(self._variance.get(), 0.0) / self.settings.window_trials)
        self._detector.delta = self.settings.delta * se
        self._detector.threshold = self.settings.threshold * se
        self._detector.update(mean)
        if self._detector.drift_detected:
            self.drifts += 1
            return True
        return False

    # -- JSON state ---------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        d = self._detector
        v = self._variance
        return {
            "pool": list(self._pool),
            "var": [v.mean.n, v.mean.get(), v._S],
            "ph": [d._x_mean.n, d._x_mean.get(), d._sum_increase, d._sum_decrease,
                   _finite(d._min_increase), d._max_decrease, d.drift_detected],
            "drifts": self.drifts,
            "start": self._start,
        }  # fmt: skip

    @classmethod
    def from_state(cls, settings: DriftSettings, state: Mapping[str, Any] | None) -> DriftGuard:
        guard = cls(settings)
        if not state:
            return guard
        guard._pool = [float(v) for v in state["pool"]]
        n, mean, m2 = state["var"]
        guard._variance = _var(float(n), float(mean), float(m2))
        xn, xmean, inc, dec, min_inc, max_dec, detected = state["ph"]
        d = guard._detector
        d._x_mean = stats.Mean._from_state(xn, xmean)
        d._sum_increase, d._sum_decrease = float(inc), float(dec)
        d._min_increase = math.inf if min_inc is None else float(min_inc)
        d._max_decrease = float(max_dec)
        d._drift_detected = bool(detected)
        guard.drifts = int(state["drifts"])
        guard._start = None if state.get("start") is None else int(state["start"])
        return guard


def _var(n: float, mean: float, m2: float) -> stats.Var:
    """A ``river.stats.Var`` of ``n`` values with this mean and sum of squared deviations."""
    var = stats.Var()
    var.mean = stats.Mean._from_state(n, mean)
    var._S = m2  # type: ignore[assignment]  # River annotates it int; it holds floats
    return var


def _finite(x: float) -> float | None:
    return None if math.isinf(x) else x
