"""Attribution and reward math: decay weights, per-touch conversion credit, per-agent reward.

Pure functions, no Flink: the reference of the formulas the job computes per event, for tests,
the batch reference and the learners' warm starts. :func:`time_decay_credits` is the reference of
the job's decay credit (udf/.../DecayCredits.java); tests/flink/test_decay_spec.py checks the two
agree on random inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from attribution.config import DAY_MS, AttributionConfig, RewardWeights

__all__ = [
    "Touch",
    "credits",
    "decay_weight",
    "last_touch_credits",
    "reward",
    "time_decay_credits",
]


@dataclass(frozen=True, slots=True)
class Touch:
    """One touch of a conversion: a view (the impression) or a click on it.

    ``age_ms`` is the conversion time minus the touch time, so touches are stated relative to
    their conversion and the math does not depend on absolute time.
    """

    impression_id: str
    age_ms: int
    click: bool = False


def decay_weight(dt_ms: float, half_life_ms: float, boost: float = 1.0) -> float:
    """Time-decay weight ``boost * 2^(-dt / half_life)`` of a touch ``dt_ms`` before the conversion.

    >>> decay_weight(0, 7 * 86_400_000)
    1.0
    >>> decay_weight(14 * 86_400_000, 7 * 86_400_000, boost=2.0)
    0.5
    """
    if not dt_ms >= 0:
        raise ValueError(f"decay_weight: expected dt_ms >= 0, found {dt_ms!r}")
    if not half_life_ms > 0:
        raise ValueError(f"decay_weight: expected half_life_ms > 0, found {half_life_ms!r}")
    return boost * 2.0 ** (-dt_ms / half_life_ms)


def time_decay_credits(
    value: float,
    touches: Sequence[Touch],
    *,
    half_life_ms: float = 7 * DAY_MS,
    click_boost: float = 2.0,
) -> list[float]:
    """Credit per touch, ``value * w_i / sum(w)`` with ``w`` from :func:`decay_weight`.

    A view now and a click one half-life ago weigh the same with the default boost of 2:

    >>> day = 86_400_000
    >>> time_decay_credits(10.0, [Touch("i1", 0), Touch("i2", 7 * day, click=True)])
    [5.0, 5.0]
    >>> time_decay_credits(3.0, [])
    []
    """
    _check_value("time_decay_credits", value)
    if not touches:
        return []
    # Log-space, relative to the heaviest touch: the same ratios as the plain formula, but no
    # underflow to 0/0 when every touch is many half-lives old.
    logs = [
        math.log2(click_boost if t.click else 1.0) - _age("time_decay_credits", t) / half_life_ms
        for t in touches
    ]
    top = max(logs)
    weights = [2.0 ** (x - top) for x in logs]
    total = math.fsum(weights)
    return [value * w / total for w in weights]


def last_touch_credits(value: float, touches: Sequence[Touch]) -> list[float]:
    """All of ``value`` to the latest touch; at equal time a click beats a view, then the larger
    impression id wins.

    >>> last_touch_credits(8.0, [Touch("i1", 5), Touch("i2", 5, click=True), Touch("i3", 9)])
    [0.0, 8.0, 0.0]
    """
    _check_value("last_touch_credits", value)
    if not touches:
        return []
    for t in touches:
        _age("last_touch_credits", t)
    winner = min(range(len(touches)), key=lambda i: _recency(touches[i]))
    return [value if i == winner else 0.0 for i in range(len(touches))]


def credits(value: float, touches: Sequence[Touch], config: AttributionConfig) -> list[float]:
    """Credit per touch under ``config.model``.

    >>> credits(4.0, [Touch("i1", 0), Touch("i2", 1)], AttributionConfig(model="last_touch"))
    [4.0, 0.0]
    """
    if config.model == "last_touch":
        return last_touch_credits(value, touches)
    return time_decay_credits(
        value, touches, half_life_ms=config.half_life_ms, click_boost=config.click_boost
    )


def reward(weights: RewardWeights, click: float, credit: float, cost: float) -> float:
    """``weights.click*click + weights.credit*credit - weights.cost*cost``.

    >>> reward(RewardWeights(click=1.0, credit=1.0, cost=1.0), click=1.0, credit=0.0, cost=0.25)
    0.75
    """
    return weights.click * click + weights.credit * credit - weights.cost * cost


def _recency(touch: Touch) -> tuple[int, bool, _Desc]:
    # min() of this is the latest touch, clicks first, then the largest impression id.
    return (touch.age_ms, not touch.click, _Desc(touch.impression_id))


@dataclass(frozen=True, slots=True)
class _Desc:
    """Reverses string order inside a sort key."""

    text: str

    def __lt__(self, other: _Desc) -> bool:
        return self.text > other.text


def _check_value(where: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{where}: expected a finite conversion value >= 0, found {value!r}")


def _age(where: str, touch: Touch) -> int:
    if not touch.age_ms >= 0:
        raise ValueError(
            f"{where}: expected touches at or before the conversion (age_ms >= 0), found {touch!r}"
        )
    return touch.age_ms
