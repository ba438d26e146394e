"""Typed, validated configuration of attribution and per-agent rewards.

Two YAML sections map onto these objects: ``attribution`` (windows, decay, model) and
``rewards`` (one weight triple per agent). Values may be strings, as environment overrides are.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MODELS = ("time_decay", "last_touch")
AGENTS = ("creative", "bid", "budget", "segment")


def _bad(key: str, expected: str, found: Any) -> NoReturn:
    raise ValueError(f"config key {key!r}: expected {expected}, found {found!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        _bad(key, "an integer > 0 (milliseconds)", value)


def _parse_number(key: str, raw: Any, *, integer: bool) -> Any:
    """Strings come from environment overrides; anything else is checked by the dataclass."""
    if not isinstance(raw, str):
        return raw
    try:
        return int(raw) if integer else float(raw)
    except ValueError:
        _bad(key, "an integer" if integer else "a number", raw)


@dataclass(frozen=True)
class AttributionConfig:
    """Windows, decay and model of click and conversion attribution.

    >>> AttributionConfig().half_life_ms == 7 * DAY_MS
    True
    >>> AttributionConfig(model="linear")
    Traceback (most recent call last):
    ...
    ValueError: config key 'attribution.model': expected one of ('time_decay', 'last_touch'), found 'linear'
    """

    click_window_ms: int = HOUR_MS  # a click counts if it comes at most this long after its impression
    lookback_ms: int = 30 * DAY_MS  # a touch counts if it comes at most this long before the conversion
    half_life_ms: int = 7 * DAY_MS  # time-decay: a touch's weight halves every half-life
    click_boost: float = 2.0  # time-decay: weight multiplier of a click touch over a view touch
    model: str = "time_decay"
    # A (user, campaign) keeps its most recent touches up to this many; a conversion counts them.
    max_touches: int = 1_000
    # Clicks kept for an impression that has not come yet (the first to arrive).
    max_early_clicks: int = 16

    def __post_init__(self) -> None:
        for key in ("click_window_ms", "lookback_ms", "half_life_ms"):
            _positive_int(f"attribution.{key}", getattr(self, key))
        for key in ("max_touches", "max_early_clicks"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1_000_000:
                _bad(f"attribution.{key}", "an integer in 1..1000000", value)
        if not _is_number(self.click_boost) or self.click_boost <= 0:
            _bad("attribution.click_boost", "a finite number > 0", self.click_boost)
        if self.model not in MODELS:
            _bad("attribution.model", f"one of {MODELS}", self.model)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> AttributionConfig:
        """Build from the ``attribution`` section of a YAML file; missing keys keep defaults.

        >>> AttributionConfig.from_mapping({"half_life_ms": "86400000", "model": "last_touch"}).model
        'last_touch'
        """
        if not isinstance(mapping, Mapping):
            _bad("attribution", "a mapping of keys", mapping)
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in mapping.items():
            if key not in known:
                _bad(f"attribution.{key}", f"a key among {sorted(known)}", key)
            if key == "model":
                values[key] = raw
            else:
                integer = key.endswith("_ms") or key.startswith("max_")
                values[key] = _parse_number(f"attribution.{key}", raw, integer=integer)
        return cls(**values)


@dataclass(frozen=True)
class RewardWeights:
    """One agent's weights on the reward components ``click``, ``credit`` and ``cost``.

    >>> RewardWeights(1.0, 1.0, -1.0)
    Traceback (most recent call last):
    ...
    ValueError: config key 'rewards.cost': expected a finite number >= 0, found -1.0
    """

    click: float
    credit: float
    cost: float

    def __post_init__(self) -> None:
        for key in ("click", "credit", "cost"):
            value = getattr(self, key)
            # The sign lives in the formula (cost is subtracted), so weights are magnitudes.
            if not _is_number(value) or value < 0:
                _bad(f"rewards.{key}", "a finite number >= 0", value)


@dataclass(frozen=True)
class RewardConfig:
    """Reward weights per agent: ``click*click + credit*credit - cost*cost``.

    >>> RewardConfig().weights("bid")
    RewardWeights(click=1.0, credit=1.0, cost=1.0)
    """

    creative: RewardWeights = field(default_factory=lambda: RewardWeights(1.0, 1.0, 0.0))
    bid: RewardWeights = field(default_factory=lambda: RewardWeights(1.0, 1.0, 1.0))
    budget: RewardWeights = field(default_factory=lambda: RewardWeights(0.0, 1.0, 1.0))
    # The segment agent's value of a segment: clicks and conversion credit per impression.
    segment: RewardWeights = field(default_factory=lambda: RewardWeights(1.0, 1.0, 0.0))

    def __post_init__(self) -> None:
        for agent in AGENTS:
            value = getattr(self, agent)
            if not isinstance(value, RewardWeights):
                _bad(f"rewards.{agent}", "a RewardWeights", value)

    def weights(self, agent: str) -> RewardWeights:
        if agent not in AGENTS:
            _bad("agent", f"one of {AGENTS}", agent)
        weights: RewardWeights = getattr(self, agent)
        return weights

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> RewardConfig:
        """Build from the ``rewards`` section; an agent or a component left out keeps its default.

        >>> RewardConfig.from_mapping({"creative": {"credit": "0.5"}}).creative
        RewardWeights(click=1.0, credit=0.5, cost=0.0)
        """
        if not isinstance(mapping, Mapping):
            _bad("rewards", "a mapping of agents", mapping)
        defaults = cls()
        agents: dict[str, RewardWeights] = {}
        for agent, section in mapping.items():
            if agent not in AGENTS:
                _bad(f"rewards.{agent}", f"an agent among {list(AGENTS)}", agent)
            if not isinstance(section, Mapping):
                _bad(f"rewards.{agent}", "a mapping of click, credit, cost", section)
            base = dataclasses.asdict(getattr(defaults, agent))
            for key, raw in section.items():
                if key not in base:
                    _bad(f"rewards.{agent}.{key}", "a key among ['click', 'cost', 'credit']", key)
                base[key] = _parse_number(f"rewards.{agent}.{key}", raw, integer=False)
            try:
                agents[agent] = RewardWeights(**base)
            except ValueError as exc:  # name the agent too: the weights alone do not know it
                raise ValueError(str(exc).replace("'rewards.", f"'rewards.{agent}.", 1)) from None
        return cls(**agents)
