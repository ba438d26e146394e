"""Hard safety caps applied to every bid, whatever a learner proposes."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SafetyCaps"]


@dataclass(frozen=True, slots=True)
class SafetyCaps:
    """A maximum bid and the remaining budget bound every bid.

    In a second-price (or first-price) auction the price paid never exceeds the bid, so a bid of at
    most the remaining budget can never take spend over budget.

    >>> caps = SafetyCaps(max_bid=2.0)
    >>> caps.cap(3.5, remaining_budget=10.0)
    2.0
    >>> caps.cap(0.5, remaining_budget=0.2)
    0.2
    >>> caps.cap(0.5, remaining_budget=0.0)
    0.0
    """

    max_bid: float
    min_bid: float = 0.0

    def __post_init__(self) -> None:
        if not (self.max_bid > 0 and math.isfinite(self.max_bid)):
            raise ValueError(f"SafetyCaps: max_bid must be a positive finite number; got {self.max_bid!r}")
        if not 0 <= self.min_bid <= self.max_bid:
            raise ValueError(
                f"SafetyCaps: min_bid must be in [0, max_bid={self.max_bid}]; got {self.min_bid!r}"
            )

    def cap(self, bid: float, remaining_budget: float) -> float:
        """The bid to submit: ``min(bid, max_bid, remaining_budget)``; 0 means do not bid."""
        if not math.isfinite(bid) or bid <= 0 or remaining_budget <= 0:
            return 0.0
        capped = min(bid, self.max_bid, remaining_budget)
        return capped if capped >= self.min_bid else 0.0
