"""A sequential comparison of a candidate policy with the control, valid under continuous
monitoring: the mixture sequential probability ratio test (mSPRT) with a normal mixture, and its
always-valid confidence sequence (Johari, Pekelis, Walsh: "Always valid inference", 2017).

For a difference ``d`` of two means estimated as ``d̂`` with variance ``V`` (from the arms'
counts and variances), and a mixing variance ``τ²``, the interval

    d̂ ± sqrt( V (V + τ²) / τ² · (2 log(1/α) + log((V + τ²) / V)) )

covers ``d`` at every time at once with probability at least 1 - α (asymptotically, as the
normal approximation of the means holds): the controller may look after every micro-batch, and
stop the first time an interval excludes 0, without inflating its error rate. A fixed-n t-test
looked at that often would not hold its level.

Decisions, per rollout (candidate mean ``c``, control mean ``k``, margin ``m``):

- **promote** when the interval of ``c - k`` lies above 0 (better, at confidence 1 - α);
- **roll back** when the interval of ``c - (1 - m) k`` lies below 0 (worse by more than ``m``);
- **extend** otherwise, and while either arm has fewer than ``min_decisions`` decisions or the
  control fewer than ``min_successes`` rewarded ones (the normal approximation needs them). A
  candidate with fewer rewarded decisions than that is judged with the larger of its variance and
  the control's (its own would be near 0 and make any interval too narrow), and is not promoted:
  a candidate that earns nothing is rolled back, not kept waiting.

``τ²`` is fixed once per rollout, at the first look past the minimums, to the variance of the
difference then (the test is most sensitive near that sample size); a mixing variance chosen
from the data after that would void the guarantee.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ArmTotals", "Decision", "RolloutTest", "RolloutSettings", "confidence_sequence"]


def confidence_sequence(estimate: float, variance: float, tau2: float, alpha: float) -> tuple[float, float]:
    """The always-valid interval of a difference estimated as ``estimate`` with ``variance``.

    >>> lo, hi = confidence_sequence(0.0, 1e-4, 1e-4, 0.05)
    >>> round(hi, 4), lo == -hi
    (0.0366, True)
    """
    if not (variance > 0 and tau2 > 0 and 0 < alpha < 1):
        raise ValueError(
            f"confidence_sequence: variance and tau2 must be > 0 and alpha in (0, 1); "
            f"got {variance!r}, {tau2!r}, {alpha!r}"
        )
    spread = variance * (variance + tau2) / tau2
    radius = math.sqrt(spread * (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance)))
    return estimate - radius, estimate + radius


@dataclass(slots=True)
class ArmTotals:
    """Sufficient statistics of one arm's decisions: count, Σ reward, Σ reward², rewarded ones."""

    n: float = 0.0
    total: float = 0.0
    squares: float = 0.0
    successes: float = 0.0

    def add(self, n: float, total: float, squares: float, successes: float) -> None:
        self.n += n
        self.total += total
        self.squares += squares
        self.successes += successes

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The sample variance of one reward (0 with fewer than two)."""
        if self.n < 2:
            return 0.0
        return max(self.squares - self.total * self.total / self.n, 0.0) / (self.n - 1)

    def to_list(self) -> list[float]:
        return [self.n, self.total, self.squares, self.successes]


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    """``alpha``: error rate of each decision; ``margin``: the relative loss that rolls back;
    ``min_decisions`` / ``min_successes``: per arm, before any decision."""

    alpha: float = 0.05
    margin: float = 0.05
    min_decisions: int = 200
    min_successes: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"rollout alpha: expected a number in (0, 1), found {self.alpha!r}")
        if not 0 <= self.margin < 1:
            raise ValueError(f"rollout margin: expected a number in [0, 1), found {self.margin!r}")
        for name in ("min_decisions", "min_successes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 2:
                raise ValueError(f"rollout {name}: expected an integer >= 2, found {value!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    """One look: ``action`` (promote, rollback, extend), the arms' means, the intervals of the
    difference (candidate - control) and of the margin-shifted difference."""

    action: str
    control_mean: float
    candidate_mean: float
    diff: float
    diff_low: float | None
    diff_high: float | None
    margin_high: float | None
    control_n: float
    candidate_n: float


@dataclass(slots=True)
class RolloutTest:
    """The running comparison of one rollout; JSON state via :meth:`to_state` / :meth:`from_state`."""

    settings: RolloutSettings = field(default_factory=RolloutSettings)
    control: ArmTotals = field(default_factory=ArmTotals)
    candidate: ArmTotals = field(default_factory=ArmTotals)
    tau2: float | None = None
    tau2_margin: float | None = None

    def look(self) -> Decision:
        """The decision on the evidence so far (the caller acts on promote and rollback)."""
        s, k, c = self.settings, self.control, self.candidate
        diff = c.mean - k.mean
        ready = min(k.n, c.n) >= s.min_decisions and k.successes >= s.min_successes
        rewarded = c.successes >= s.min_successes
        candidate_variance = c.variance if rewarded else max(c.variance, k.variance)
        variance = k.variance / k.n + candidate_variance / c.n if ready else 0.0
        shifted = (1 - s.margin) ** 2 * k.variance / k.n + candidate_variance / c.n if ready else 0.0
        if not ready or variance <= 0 or shifted <= 0:
            return Decision("extend", k.mean, c.mean, diff, None, None, None, k.n, c.n)
        if self.tau2 is None:
            self.tau2, self.tau2_margin = variance, shifted
        low, high = confidence_sequence(diff, variance, self.tau2, s.alpha)
        _, margin_high = confidence_sequence(
            c.mean - (1 - s.margin) * k.mean, shifted, self.tau2_margin or shifted, s.alpha
        )
        action = "promote" if low > 0 and rewarded else "rollback" if margin_high < 0 else "extend"
        return Decision(action, k.mean, c.mean, diff, low, high, margin_high, k.n, c.n)

    def to_state(self) -> dict[str, Any]:
        return {
            "control": self.control.to_list(),
            "candidate": self.candidate.to_list(),
            "tau2": self.tau2,
            "tau2_margin": self.tau2_margin,
        }

    @classmethod
    def from_state(cls, settings: RolloutSettings, state: dict[str, Any] | None) -> RolloutTest:
        if not state:
            return cls(settings)
        return cls(
            settings,
            ArmTotals(*map(float, state["control"])),
            ArmTotals(*map(float, state["candidate"])),
            state.get("tau2"),
            state.get("tau2_margin"),
        )
