"""Configuration of the ad-market simulator: one frozen dataclass, validated at construction.

Money is in currency units per impression (bids, prices) or per conversion (values); time is
epoch milliseconds of simulated event time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# The attribution lookback of the feedback job; no simulated conversion may come later than this.
MAX_CONVERSION_DELAY_DAYS = 30.0


@dataclass(frozen=True)
class SimConfig:
    """Every knob of a simulated run. Defaults give ~10 campaigns and a few hundred thousand
    impressions over 30 simulated days.

    >>> SimConfig(days=2).days
    2
    >>> SimConfig(duplicate_rate=1.5)
    Traceback (most recent call last):
    ...
    ValueError: SimConfig.duplicate_rate: expected a float in [0, 1), found 1.5
    """

    # Run
    seed: int = 7
    start_ms: int = 1_735_689_600_000  # 2025-01-01T00:00:00Z
    days: int = 30
    id_prefix: str = ""  # prefix of every generated id; "" means "s<seed>"

    # Market shape
    n_campaigns: int = 10
    creatives_per_campaign: int = 4
    n_segments: int = 4
    n_users: int = 50_000
    user_activity_sigma: float = 1.5  # lognormal spread of revisit frequency (0 = all equal)
    # Spread (standard deviation per dimension) of a user's vector around its segment's centre;
    # the centres are drawn N(0, 1), so at 0.25 the segment agent can tell most segments apart.
    user_vector_noise: float = 0.25
    requests_per_day: int = 20_000  # auction requests over all campaigns
    diurnal_amplitude: float = 0.5  # hourly traffic = mean * (1 + a * sin(...))
    daily_budget_range: tuple[float, float] = (100.0, 300.0)
    bid_multipliers: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    pacing_rates: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # the budget agent's actions
    time_blocks: int = 24  # blocks of the UTC day in the agents' context (campaigns.time_blocks)
    feature_dim: int = 8

    # Clicks
    ctr_range: tuple[float, float] = (0.005, 0.08)
    click_delay_median_s: float = 20.0
    click_delay_max_s: float = 1800.0

    # Conversions
    conv_prob_click_range: tuple[float, float] = (0.1, 0.3)
    view_conversion_ratio: float = 0.01  # P(conv | view, no click) = ratio * P(conv | click)
    conv_value_range: tuple[float, float] = (20.0, 80.0)
    # Ratio of the most to the least valuable segment's conversion values (1: segments are worth
    # the same). Segment factors are spaced evenly in log space, mean one in log, in an order
    # drawn from the seed; the segments above one are the market's high-value users.
    segment_value_spread: float = 4.0
    conv_delay_median_h: float = 24.0
    conv_delay_sigma: float = 1.3
    conv_delay_max_days: float = MAX_CONVERSION_DELAY_DAYS
    organic_conversions_per_day: float = 3.0  # conversions with no causing touch

    # Second-price market: per-segment lognormal price, median drawn from this range
    market_price_median_range: tuple[float, float] = (0.1, 0.3)
    market_price_sigma: float = 0.5
    # Drift of the competitors' price level (0: a stationary market). Each day's level is
    # 1 + price_drift_daily * u, u uniform in [-1, 1]; within the day it moves by a factor
    # 1 + price_drift_intraday * sin(2π (hour + phase) / 24), the phase uniform per day.
    price_drift_daily: float = 0.0
    price_drift_intraday: float = 0.0

    # Noise on the emitted stream
    duplicate_rate: float = 0.01
    out_of_order_ms: int = 20_000
    late_rate: float = 0.001
    late_by_ms: int = 600_000
    malformed_rate: float = 0.001

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _CHECKS[f.name](f.name, getattr(self, f.name))
        if self.click_delay_median_s >= self.click_delay_max_s:
            _fail(
                "click_delay_median_s",
                f"a median below click_delay_max_s={self.click_delay_max_s}",
                self.click_delay_median_s,
            )
        if self.conv_delay_median_h >= self.conv_delay_max_days * 24:
            _fail(
                "conv_delay_median_h",
                f"a median below conv_delay_max_days * 24 = {self.conv_delay_max_days * 24:g}",
                self.conv_delay_median_h,
            )

    @property
    def prefix(self) -> str:
        return self.id_prefix or f"s{self.seed}"

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.days * DAY_MS

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> SimConfig:
        """Build from a job config or CLI; string values are parsed ("0.01", "1,2,3").

        >>> SimConfig.from_mapping({"days": "3", "bid_multipliers": "0.5,1,2"}).bid_multipliers
        (0.5, 1.0, 2.0)
        """
        return cls().with_overrides(mapping)

    def with_overrides(self, mapping: Mapping[str, Any]) -> SimConfig:
        known = {f.name: f for f in dataclasses.fields(self)}
        values: dict[str, Any] = {}
        for key, raw in mapping.items():
            f = known.get(key)
            if f is None:
                raise ValueError(f"SimConfig: unknown key {key!r}; expected one of {sorted(known)}")
            values[key] = _parse(key, str(f.type), raw)
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _fail(key: str, expected: str, found: Any) -> NoReturn:
    raise ValueError(f"SimConfig.{key}: expected {expected}, found {found!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int(lo: int, hi: int | None = None):
    def check(key: str, value: Any) -> None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo
        if not ok or (hi is not None and value > hi):
            _fail(key, f"an int in [{lo}, {hi if hi is not None else 'inf'}]", value)

    return check


def _float(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False):
    def check(key: str, value: Any) -> None:
        ok = _is_number(value) and (value > lo if lo_open else value >= lo)
        ok = ok and (value < hi if hi_open else value <= hi)
        if not ok:
            bounds = f"{'(' if lo_open else '['}{lo:g}, {'inf' if math.isinf(hi) else f'{hi:g}'}"
            _fail(key, f"a float in {bounds}{')' if hi_open else ']'}", value)

    return check


def _range(lo: float, hi: float):
    """A (low, high) pair with lo < low <= high <= hi."""

    def check(key: str, value: Any) -> None:
        ok = isinstance(value, tuple) and len(value) == 2 and all(_is_number(v) for v in value)
        if not ok or not (lo < value[0] <= value[1] <= hi):
            _fail(key, f"a pair (low, high) with {lo:g} < low <= high <= {hi:g}", value)

    return check


def _multipliers(key: str, value: Any) -> None:
    ok = isinstance(value, tuple) and len(value) > 0 and all(_is_number(v) and v > 0 for v in value)
    if not ok or len(set(value)) != len(value):
        _fail(key, "a non-empty tuple of distinct positive floats", value)


def _rates(key: str, value: Any) -> None:
    ok = isinstance(value, tuple) and len(value) > 0 and all(_is_number(v) and 0 <= v <= 1 for v in value)
    if not ok or len(set(value)) != len(value):
        _fail(key, "a non-empty tuple of distinct rates in [0, 1]", value)


def _prefix(key: str, value: Any) -> None:
    if not isinstance(value, str) or any(c.isspace() for c in value):
        _fail(key, "a string without whitespace", value)


_INF = math.inf
_CHECKS = {
    "seed": _int(0),
    "start_ms": _int(0),
    "days": _int(1, 3650),
    "id_prefix": _prefix,
    "n_campaigns": _int(1, 10_000),
    "creatives_per_campaign": _int(1, 1000),
    "n_segments": _int(1, 1000),
    "n_users": _int(1),
    "user_activity_sigma": _float(0, 5),
    "user_vector_noise": _float(0, 10),
    "requests_per_day": _int(1),
    "diurnal_amplitude": _float(0, 1, hi_open=True),
    "daily_budget_range": _range(0, _INF),
    "bid_multipliers": _multipliers,
    "pacing_rates": _rates,
    "time_blocks": _int(1, 1440),
    "feature_dim": _int(2, 10_000),
    "ctr_range": _range(0, 0.5),
    "click_delay_median_s": _float(0, 3600, lo_open=True, hi_open=True),
    "click_delay_max_s": _float(1, 3600, hi_open=True),
    "conv_prob_click_range": _range(0, 1),
    "view_conversion_ratio": _float(0, 1),
    "conv_value_range": _range(0, _INF),
    "segment_value_spread": _float(1, 1000),
    "conv_delay_median_h": _float(0, 24 * MAX_CONVERSION_DELAY_DAYS, lo_open=True),
    "conv_delay_sigma": _float(0, 5, lo_open=True),
    "conv_delay_max_days": _float(0, MAX_CONVERSION_DELAY_DAYS, lo_open=True),
    "organic_conversions_per_day": _float(0, _INF),
    "market_price_median_range": _range(0, _INF),
    "market_price_sigma": _float(0, 5, lo_open=True),
    "price_drift_daily": _float(0, 1, hi_open=True),
    "price_drift_intraday": _float(0, 1, hi_open=True),
    "duplicate_rate": _float(0, 1, hi_open=True),
    "out_of_order_ms": _int(0),
    "late_rate": _float(0, 1, hi_open=True),
    "late_by_ms": _int(1),
    "malformed_rate": _float(0, 1, hi_open=True),
}


def _parse(key: str, type_name: str, raw: Any) -> Any:
    """Coerce ``raw`` to the field's type; strings come from CLIs and environment variables."""
    try:
        if type_name == "int":
            return int(raw) if isinstance(raw, str) else raw
        if type_name == "float":
            return float(raw) if isinstance(raw, str) else raw
        if type_name.startswith("tuple"):
            items = raw.split(",") if isinstance(raw, str) else raw
            return tuple(float(v) for v in items)
        return raw
    except (TypeError, ValueError):
        _fail(key, f"a value of type {type_name}", raw)


__all__ = ["DAY_MS", "HOUR_MS", "MAX_CONVERSION_DELAY_DAYS", "SimConfig"]
