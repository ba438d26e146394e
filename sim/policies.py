"""Serving policies: what the simulated serving node asks for each auction request.

A policy sees one :class:`Request` at a time, in simulated-time order, and returns the
:class:`Decision` of every agent that acted. The simulator calls it as it goes, so a policy
backed by the live policy store (Redis) can be plugged in and change its behaviour mid-run.

Actions are strings, as in the event contract:
- ``creative``: a creative id of the request's campaign (required);
- ``bid``: a bid multiplier on the campaign's base bid, e.g. ``"1.25"`` (default 1);
- ``budget``: a pacing rate in [0, 1], the probability of entering this auction (default 1);
- ``segment``: the segment the serving node put the user in (the segment agent's label); when
  given, the impression and auction records log it as their ``segment``, in place of the
  simulator's own label, as a real serving node that never sees the truth would.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

CREATIVE, BID, BUDGET, SEGMENT = "creative", "bid", "budget", "segment"
AGENTS = (CREATIVE, BID, BUDGET, SEGMENT)


@dataclass(frozen=True, slots=True)
class Request:
    """One auction request for one campaign, as the serving node sees it."""

    ts: int  # event time, epoch ms
    campaign_id: str
    segment: str
    user_id: str
    features: tuple[float, ...]
    remaining_budget: float  # of today's budget, currency units
    daily_budget: float
    base_bid: float  # the bid at multiplier 1
    creatives: tuple[str, ...]  # creative actions available
    bid_multipliers: tuple[float, ...]  # bid actions available (the grid)
    pacing_rates: tuple[float, ...] = ()  # the budget agent's actions (rates in [0, 1])


@dataclass(frozen=True, slots=True)
class Decision:
    """One agent's action and the probability the policy gave it (in (0, 1])."""

    agent: str
    action: str
    propensity: float
    policy_version: int

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "action": self.action,
            "propensity": self.propensity,
            "policy_version": self.policy_version,
        }


@runtime_checkable
class ServingPolicy(Protocol):
    def decide(self, request: Request) -> Sequence[Decision]:
        """The decisions of the agents that act on ``request``; exactly one ``creative``."""
        ...


def format_multiplier(multiplier: float) -> str:
    """The action string of a bid multiplier.

    >>> format_multiplier(1.0), format_multiplier(0.75)
    ('1', '0.75')
    """
    return f"{multiplier:g}"


@dataclass(frozen=True, slots=True)
class Served:
    """What the simulator does with a policy's decisions."""

    creative_id: str
    bid_multiplier: float
    pacing_rate: float
    decisions: tuple[Decision, ...]
    segment: str | None = None  # the serving node's segment, when a segment agent acted


def interpret(request: Request, decisions: Sequence[Decision], policy: object) -> Served:
    """Check a policy's decisions and read the actions; ValueError names the policy and the flaw."""
    name = type(policy).__name__
    creative, multiplier, pacing, segment = None, 1.0, 1.0, None
    seen: set[str] = set()
    for d in decisions:
        if d.agent not in AGENTS or d.agent in seen:
            raise ValueError(f"policy {name}: expected one decision per agent in {AGENTS}, found {d.agent!r}")
        seen.add(d.agent)
        if not (0.0 < d.propensity <= 1.0):
            raise ValueError(
                f"policy {name}: propensity of {d.agent} must be in (0, 1], found {d.propensity!r}"
            )
        if not isinstance(d.policy_version, int) or d.policy_version < 0:
            raise ValueError(f"policy {name}: policy_version must be an int >= 0, found {d.policy_version!r}")
        if d.agent == CREATIVE:
            creative = d.action
        elif d.agent == BID:
            multiplier = _number(name, d, lo=0.0)
        elif d.agent == SEGMENT:
            segment = d.action
        else:
            pacing = _number(name, d, lo=0.0, hi=1.0, closed=True)
    if creative not in request.creatives:
        raise ValueError(f"policy {name}: creative must be one of {request.creatives}, found {creative!r}")
    return Served(creative, multiplier, pacing, tuple(decisions), segment)


def _number(name: str, d: Decision, *, lo: float, hi: float = float("inf"), closed: bool = False) -> float:
    try:
        value = float(d.action)
    except ValueError:
        value = float("nan")
    if not ((lo <= value if closed else lo < value) and value <= hi):  # NaN fails both
        bounds = f"{'[' if closed else '('}{lo:g}, {hi:g}]"
        raise ValueError(f"policy {name}: {d.agent} action must be a number in {bounds}, found {d.action!r}")
    return value


class UniformRandomPolicy:
    """Every action equally likely: the logging policy for off-policy learning and the CTR check.

    >>> from sim.policies import Request
    >>> req = Request(0, "c00", "seg0", "u1", (), 10.0, 10.0, 0.2, ("a", "b"), (0.5, 1.0, 2.0))
    >>> [(d.agent, d.propensity) for d in UniformRandomPolicy(seed=1).decide(req)]
    [('creative', 0.5), ('bid', 0.3333333333333333)]
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        policy_version: int = 0,
        bid: bool = True,
        pacing_rates: tuple[float, ...] | None = None,
        segments: int = 0,
    ) -> None:
        self.seed = seed
        self.segments = [f"k{i}" for i in range(segments)]  # the segment agent's labels, if any
        self.policy_version = policy_version
        self.bid = bid
        self.pacing_rates = pacing_rates
        # random.Random: scalar draws per request are several times cheaper than numpy's.
        self._rng = random.Random(seed)

    def decide(self, request: Request) -> list[Decision]:
        draw, version = self._rng.random, self.policy_version
        # int(u * n) for u in [0, 1) is uniform over range(n), and far cheaper than randrange.
        creatives = request.creatives
        n = len(creatives)
        out = [Decision(CREATIVE, creatives[int(draw() * n)], 1.0 / n, version)]
        if self.bid:
            grid = request.bid_multipliers
            m = len(grid)
            out.append(Decision(BID, format_multiplier(grid[int(draw() * m)]), 1.0 / m, version))
        if self.pacing_rates:
            rates = self.pacing_rates
            k = len(rates)
            out.append(Decision(BUDGET, format_multiplier(rates[int(draw() * k)]), 1.0 / k, version))
        if self.segments:
            labels = self.segments
            out.append(Decision(SEGMENT, labels[int(draw() * len(labels))], 1.0 / len(labels), version))
        return out


class FixedPolicy:
    """Always the same actions (propensity 1): a baseline, or an oracle when given the best creatives.

    ``creatives`` maps (campaign_id, segment) to a creative id; missing pairs use the first creative.

    >>> from sim.policies import Request
    >>> req = Request(0, "c00", "seg0", "u1", (), 10.0, 10.0, 0.2, ("a", "b"), (1.0,))
    >>> [d.action for d in FixedPolicy({("c00", "seg0"): "b"}, bid_multiplier=1.5).decide(req)]
    ['b', '1.5']
    """

    def __init__(
        self,
        creatives: dict[tuple[str, str], str] | None = None,
        *,
        bid_multiplier: float = 1.0,
        policy_version: int = 0,
    ) -> None:
        self.creatives = dict(creatives or {})
        self.bid_multiplier = bid_multiplier
        self.policy_version = policy_version

    def decide(self, request: Request) -> list[Decision]:
        creative = self.creatives.get((request.campaign_id, request.segment), request.creatives[0])
        return [
            Decision(CREATIVE, creative, 1.0, self.policy_version),
            Decision(BID, format_multiplier(self.bid_multiplier), 1.0, self.policy_version),
        ]
