"""Per-campaign settings the bid and budget agents plan with: daily budgets and the day's time blocks.

One table for the job, the learners and the serving nodes (config section ``campaigns``):

- ``time_blocks``: how many equal blocks a UTC day is cut into; one value for everything, since the
  micro-batches key the agents' statistics by block and the serving nodes send the block of each
  request in its context;
- ``daily_budget``: the budget of a campaign the table does not name;
- ``budgets``: the daily budget of each named campaign.

The time block of an event time is defined here once, in Python (:meth:`CampaignTable.time_block`)
and as the SQL expression the micro-batches use (:meth:`CampaignTable.time_block_sql`).

>>> table = CampaignTable(time_blocks=24, daily_budget=200.0, budgets={"c01": 150.0})
>>> table.budget("c01"), table.budget("c99")
(150.0, 200.0)
>>> table.time_block(86_400_000 + 3_600_000 * 5 + 1)
5
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DAY_MS = 86_400_000

__all__ = ["DAY_MS", "CampaignTable", "SpendToday", "parse_agent_state"]


def _bad(key: str, expected: str, found: Any) -> None:
    raise ValueError(f"config key {key!r}: expected {expected}, found {found!r}")


def _amount(key: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        _bad(key, "a positive number (currency units a day)", value)
    return float(value)


@dataclass(frozen=True)
class CampaignTable:
    time_blocks: int = 24
    daily_budget: float = 200.0
    budgets: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.time_blocks
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1440:
            _bad("campaigns.time_blocks", "an integer in 1..1440", n)
        object.__setattr__(self, "daily_budget", _amount("campaigns.daily_budget", self.daily_budget))
        if not isinstance(self.budgets, Mapping):
            _bad("campaigns.budgets", "a mapping of campaign id to daily budget", self.budgets)
        budgets = {}
        for campaign, amount in self.budgets.items():
            if not isinstance(campaign, str) or not campaign:
                _bad("campaigns.budgets", "campaign ids as non-empty strings", campaign)
            budgets[campaign] = _amount(f"campaigns.budgets.{campaign}", amount)
        object.__setattr__(self, "budgets", budgets)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> CampaignTable:
        """Build from the ``campaigns`` section; an unknown key fails naming it.

        >>> CampaignTable.from_mapping({"time_block": 12})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: config key 'campaigns.time_block': expected a key among [...], found 'time_block'
        """
        if not isinstance(mapping, Mapping):
            _bad("campaigns", "a mapping of keys", mapping)
        known = ("budgets", "daily_budget", "time_blocks")
        for key in mapping:
            if key not in known:
                _bad(f"campaigns.{key}", f"a key among {list(known)}", key)
        return cls(**dict(mapping))

    def to_mapping(self) -> dict[str, Any]:
        return {
            "time_blocks": self.time_blocks,
            "daily_budget": self.daily_budget,
            "budgets": dict(self.budgets),
        }

    def budget(self, campaign_id: str) -> float:
        """The daily budget of ``campaign_id``."""
        return self.budgets.get(campaign_id, self.daily_budget)

    def time_block(self, ts_ms: int) -> int:
        """The block of the UTC day that the event time ``ts_ms`` falls in."""
        return (int(ts_ms) % DAY_MS) * self.time_blocks // DAY_MS

    def block_elapsed(self, ts_ms: int) -> float:
        """The fraction of its time block gone at ``ts_ms``, in [0, 1).

        >>> CampaignTable(time_blocks=24).block_elapsed(3_600_000 * 5 + 900_000)
        0.25
        """
        return ((int(ts_ms) % DAY_MS) * self.time_blocks % DAY_MS) / DAY_MS

    def agent_state(self, ts_ms: int, segment: str) -> str:
        """The bid and budget agents' state key of an event, as :meth:`agent_state_sql` makes it.

        >>> CampaignTable().agent_state(86_400_000 + 3_600_000 * 5, "young")
        '1|5|young'
        """
        return f"{int(ts_ms) // DAY_MS}|{self.time_block(ts_ms)}|{segment}"

    def time_block_sql(self, ts_column: str) -> str:
        """:meth:`time_block` of a BIGINT column of epoch milliseconds, as Flink SQL.

        >>> CampaignTable(time_blocks=7).time_block_sql("ts")
        'MOD(ts, 86400000) * 7 / 86400000'
        """
        return f"MOD({ts_column}, {DAY_MS}) * {self.time_blocks} / {DAY_MS}"

    def agent_state_sql(self, ts_column: str, segment_column: str) -> str:
        """The state key of the bid and budget agents' statistics, ``"<day>|<block>|<segment>"``
        (day: UTC days since the epoch), as Flink SQL; :func:`parse_agent_state` reads it."""
        return (
            f"CONCAT(CAST({ts_column} / {DAY_MS} AS STRING), '|', "
            f"CAST({self.time_block_sql(ts_column)} AS STRING), '|', {segment_column})"
        )


def parse_agent_state(state: str, n_blocks: int, where: str) -> tuple[int, int, str]:
    """``(day, block, segment)`` of a bid or budget agent's state key; ValueError names ``where``.

    >>> parse_agent_state("20000|5|young", 24, "BidAgent.update")
    (20000, 5, 'young')
    >>> parse_agent_state("5|young", 24, "BidAgent.update")
    Traceback (most recent call last):
    ...
    ValueError: BidAgent.update: state must be 'day|block|segment' with a block in [0, 24); got '5|young'
    """
    try:
        day_s, block_s, segment = state.split("|", 2)
        day, block = int(day_s), int(block_s)
    except ValueError:
        day, block = -1, -1
    if day < 0 or not 0 <= block < n_blocks:
        raise ValueError(
            f"{where}: state must be 'day|block|segment' with a block in [0, {n_blocks}); got {state!r}"
        )
    return day, block, segment


class SpendToday:
    """A campaign's spend on its latest UTC day with auctions, from the micro-batches' cost sums.

    Kept in the learner's params, so it is in Flink state and published with the policy: serving
    nodes compute the budget left from it (:meth:`remaining`).

    >>> spend = SpendToday()
    >>> spend.add(20000, 12.5); spend.add(20000, 2.5); spend.add(19999, 100.0)
    >>> spend.to_json()
    [20000, 15.0]
    >>> spend.remaining(200.0, now_ms=20000 * DAY_MS + 5), spend.remaining(200.0, now_ms=20001 * DAY_MS)
    (185.0, 200.0)
    """

    def __init__(self, day: int | None = None, amount: float = 0.0) -> None:
        self.day = day
        self.amount = amount

    def add(self, day: int, cost: float) -> None:
        """Book ``cost`` spent on ``day``; a later day starts afresh, an earlier one is past."""
        if self.day is None or day > self.day:
            self.day, self.amount = day, 0.0
        if day == self.day:
            self.amount += cost

    def remaining(self, budget: float, now_ms: int) -> float:
        """What is left of a daily ``budget`` at ``now_ms`` (all of it on a day without spend)."""
        if self.day is None or int(now_ms) // DAY_MS != self.day:
            return budget
        return max(budget - self.amount, 0.0)

    def to_json(self) -> list[float | int | None]:
        return [self.day, self.amount]

    @classmethod
    def from_json(cls, value: Any) -> SpendToday:
        if value is None:
            return cls()
        day, amount = value
        return cls(None if day is None else int(day), float(amount))
