"""RL bid agent: model-based Q over (time block, budget left, segment) and a grid of bid multipliers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from learners.base import Learner, check_arms, compact
from learners.batch import ArmID, Batch
from learners.campaigns import SpendToday, parse_agent_state
from learners.safety import SafetyCaps

__all__ = ["NOT_ENTERED", "BidAgent"]

# The arm of a request the budget agent throttled: it counts in the request volume the agent
# plans with (every request it could bid on, so the pacer's throttle does not read as scarce
# traffic to bid up for), never in a multiplier's statistics.
NOT_ENTERED = "-"


class BidAgent(Learner):
    """Budget-constrained bidding by dynamic programming on a learned model (after Cai et al. 2017).

    **State** ``(t, b, s)``: time block ``t`` of the day, budget left ``b`` (discretised into
    ``budget_levels`` levels of ``budget``) and user segment ``s``. **Actions**: bid multipliers
    (labels such as ``"1.25"``) on the campaign's base bid.

    **Sufficient statistics** (batch rows with ``state = "<day>|<t>|<s>"``, see
    :func:`learners.campaigns.parse_agent_state`; ``arm`` = multiplier label): ``trials`` = requests
    bid on (a request throttled by the budget agent is a trial of arm :data:`NOT_ENTERED`: volume
    only), ``wins`` = auctions won, ``cost_sum`` = spend (from ``ad.auctions``),
    ``reward_sum + delayed_sum`` = attributed value (clicks and conversion credit). The learner
    keeps per ``(s, m)``
    those sums and per ``(t, s)`` requests per day; all additive, so batches can be split freely.
    Value per request is modelled as ``win rate(s, m) * value per win(s)``: what a won impression
    is worth does not depend on the bid that won it, so value per win is pooled over the
    multipliers of a segment (many wins, few clicks per cell). Without ``wins`` the model falls back
    to value per request per cell.

    **Q**: ``Q(t, b, s, m) = n(t, s) * (v(s, m) - λ(t, b) * k(s, m))``, where ``λ(t, b)`` is the
    shadow price of budget found by backward induction over blocks: for each ``(t, b)`` the joint
    action over segments maximising block value plus ``V(t+1, b - spend)`` is searched along the
    Lagrangian frontier (every breakpoint of the per-segment argmax), giving ``V(t, b)``.
    ``choose`` is ε-greedy on ``Q`` (propensity ``(1 - ε) / ties + ε / K`` for a greedy arm).

    **Caps**: :meth:`bid` never exceeds ``max_bid`` nor the remaining budget.

    Params: ``"segments"``, ``"arms"``, ``"cells"`` (``[n, value, cost, wins]`` per segment and arm, a
    segment-major list), ``"volume"`` (requests per block and segment, summed over days), ``"days"``,
    ``"spend"`` (``[day, amount]``: the campaign's spend on its latest day, for the serving nodes'
    budget left, :meth:`remaining_budget`).

    Examples
    --------
    >>> from learners.batch import Batch
    >>> agent = BidAgent(["0.5", "1", "1.5"], budget=50.0, n_blocks=2, max_bid=1.0, epsilon=0.0, seed=0)
    >>> rows = [
    ...     {"state": f"0|{t}|young", "arm": m, "trials": 100, "reward_sum": r, "cost_sum": c}
    ...     for t in (0, 1) for m, r, c in (("0.5", 2, 3), ("1", 3, 8), ("1.5", 3.5, 15))
    ... ]
    >>> agent.update(Batch.from_rows(rows, window_end=86_400_000 - 1))
    >>> ctx = {"time_block": 0, "segment": "young", "remaining_budget": 50.0, "base_bid": 0.4}
    >>> agent.choose(ctx, ["0.5", "1", "1.5"])  # 300 requests a block: "1" twice spends 48 of 50
    ('1', 1.0)
    >>> agent.choose(ctx | {"remaining_budget": 20.0}, ["0.5", "1", "1.5"])  # short of budget: bid low
    ('0.5', 1.0)
    >>> round(agent.bid(ctx, "1.5"), 6), agent.bid(ctx | {"remaining_budget": 0.3}, "1.5")
    (0.6, 0.3)
    """

    CAMPAIGN_ARGS: ClassVar[tuple[str, ...]] = ("budget", "n_blocks")
    CONTEXT_KEYS: ClassVar[tuple[str, ...]] = ("time_block", "segment", "remaining_budget")
    RETUNABLE: ClassVar[tuple[str, ...]] = (
        "budget",
        "epsilon",
        "max_bid",
        "budget_levels",
        "prior_trials",
        "half_life_ms",
    )

    def __init__(
        self,
        multipliers: Sequence[str],
        budget: float,
        *,
        n_blocks: int = 24,
        budget_levels: int = 50,
        epsilon: float = 0.05,
        max_bid: float = 10.0,
        prior_trials: float = 1.0,
        half_life_ms: float | None = None,
        seed: int | None = None,
    ) -> None:
        if isinstance(multipliers, str) or len(multipliers) == 0:
            raise ValueError(f"BidAgent: multipliers must be a non-empty list of labels; got {multipliers!r}")
        for m in multipliers:
            if not float(m) > 0:
                raise ValueError(f"BidAgent: multipliers must be positive numbers; got {m!r}")
        if not budget > 0:
            raise ValueError(f"BidAgent: budget must be > 0; got {budget!r}")
        if not (isinstance(n_blocks, int) and n_blocks >= 1):
            raise ValueError(f"BidAgent: n_blocks must be an int >= 1; got {n_blocks!r}")
        if not (isinstance(budget_levels, int) and budget_levels >= 2):
            raise ValueError(f"BidAgent: budget_levels must be an int >= 2; got {budget_levels!r}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"BidAgent: epsilon must be in [0, 1]; got {epsilon!r}")
        if not prior_trials > 0:
            raise ValueError(f"BidAgent: prior_trials must be > 0; got {prior_trials!r}")
        self._caps = SafetyCaps(max_bid=max_bid)
        super().__init__(half_life_ms=half_life_ms, seed=seed)
        # Labels as serving nodes write actions ("1", not "1.0"): sim.policies.format_multiplier.
        self.multipliers = [f"{float(m):g}" for m in multipliers]
        self.budget = budget
        self.n_blocks = n_blocks
        self.budget_levels = budget_levels
        self.epsilon = epsilon
        self.max_bid = max_bid
        self.prior_trials = prior_trials
        self._cells: dict[tuple[str, str], list[float]] = {}  # (segment, arm) -> [n, value, cost, wins]
        self._volume: dict[str, list[float]] = {}  # segment -> requests per block (summed over days)
        self._days = 0
        self._last_day: int | None = None
        self._spend = SpendToday()
        self._lambda: np.ndarray | None = None  # shadow price of budget, [block, level]

    def _config(self) -> dict[str, Any]:
        return {
            "multipliers": list(self.multipliers),
            "budget": self.budget,
            "n_blocks": self.n_blocks,
            "budget_levels": self.budget_levels,
            "epsilon": self.epsilon,
            "max_bid": self.max_bid,
            "prior_trials": self.prior_trials,
            "half_life_ms": self.half_life_ms,
        }

    # -- learning -------------------------------------------------------------------------------

    def _learn(self, batch: Batch, weight: float) -> None:
        for row in batch.rows:
            day, block, segment = parse_agent_state(row.state, self.n_blocks, "BidAgent.update")
            if self._last_day is None or day > self._last_day:
                self._days += 1
                self._last_day = day
            self._spend.add(day, row.cost_sum)
            self._volume.setdefault(segment, [0.0] * self.n_blocks)[block] += weight * row.trials
            if row.arm == NOT_ENTERED:
                continue
            cell = self._cells.setdefault((segment, str(row.arm)), [0.0, 0.0, 0.0, 0.0])
            cell[0] += weight * row.trials
            cell[1] += weight * row.total_reward
            cell[2] += weight * row.cost_sum
            cell[3] += weight * row.wins

    def _scale(self, factor: float) -> None:
        for cell in self._cells.values():
            cell[:] = [v * factor for v in cell]
        for vol in self._volume.values():
            vol[:] = [v * factor for v in vol]

    def _state(self) -> dict[str, Any]:
        segments = sorted(self._volume)
        arms = sorted({a for _, a in self._cells}, key=float)
        zero = [0.0, 0.0, 0.0, 0.0]
        return {
            "segments": segments,
            "arms": arms,
            "cells": [[compact(v) for v in self._cells.get((s, a), zero)] for s in segments for a in arms],
            "volume": [[compact(v) for v in self._volume[s]] for s in segments],
            "days": self._days,
            "last_day": self._last_day,
            "spend": self._spend.to_json(),
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        segments, arms = state["segments"], state["arms"]
        cells = state["cells"]
        if len(cells) != len(segments) * len(arms):
            raise ValueError(
                f"BidAgent.from_params: expected {len(segments) * len(arms)} cells; got {len(cells)}"
            )
        self._cells = {}
        for i, s in enumerate(segments):
            for j, a in enumerate(arms):
                cell = [float(v) for v in cells[i * len(arms) + j]]
                if any(cell):
                    self._cells[(s, a)] = cell
        self._volume = {s: [float(v) for v in vol] for s, vol in zip(segments, state["volume"], strict=True)}
        self._days = int(state["days"])
        self._last_day = state["last_day"]
        self._spend = SpendToday.from_json(state.get("spend"))

    def _invalidate(self) -> None:
        self._lambda = None

    def carry_spend(self, stored: Mapping[str, Any]) -> None:
        self._spend = SpendToday.from_json(stored.get("spend"))

    def remaining_budget(self, now_ms: int) -> float:
        """The campaign's budget left at ``now_ms`` by the spend the job has seen today."""
        return self._spend.remaining(self.budget, now_ms)

    # -- model and planning ---------------------------------------------------------------------

    def _rates(self, segment: str, arms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Value and cost per request of each arm in ``segment``, shrunk to the segment's mean."""
        cells = [self._cells.get((segment, a), [0.0, 0.0, 0.0, 0.0]) for a in arms]
        n = sum(c[0] for c in cells)
        wins = sum(c[3] for c in cells)
        mean_v = sum(c[1] for c in cells) / n if n else 0.0
        mean_k = sum(c[2] for c in cells) / n if n else 0.0
        w = self.prior_trials
        cost = np.array([(c[2] + w * mean_k) / (c[0] + w) for c in cells])
        if wins > 0:
            per_win = sum(c[1] for c in cells) / wins
            win_rate = np.array([(c[3] + w * wins / n) / (c[0] + w) for c in cells])
            return win_rate * per_win, cost
        value = np.array([(c[1] + w * mean_v) / (c[0] + w) for c in cells])
        return value, cost

    def _plan(self) -> np.ndarray:
        """``λ[t, level]``: the budget shadow price of the best joint action, by backward induction."""
        if self._lambda is not None:
            return self._lambda
        arms = self.multipliers
        days = max(self._days, 1)
        segs = sorted(self._volume)
        rates = [self._rates(s, arms) for s in segs]
        # Candidate shadow prices: 0, every breakpoint of a per-segment argmax, and a large value.
        breaks = {0.0, 1e12}
        for value, cost in rates:
            for i in range(len(arms)):
                for j in range(len(arms)):
                    if cost[i] > cost[j] and value[i] > value[j]:
                        breaks.add(float((value[i] - value[j]) / (cost[i] - cost[j])))
        lams = np.array(sorted(breaks))
        cands = np.concatenate([lams[:1], (lams[:-1] + lams[1:]) / 2, lams[-1:]])
        # For each candidate λ: per-segment choice, then block value and spend per unit volume.
        picks = [np.argmax(value[None, :] - cands[:, None] * cost[None, :], axis=1) for value, cost in rates]
        levels = np.linspace(0.0, self.budget, self.budget_levels + 1)
        v_next = np.zeros(len(levels))
        lam_table = np.zeros((self.n_blocks, len(levels)))
        for t in range(self.n_blocks - 1, -1, -1):
            vol = np.array([self._volume[s][t] / days for s in segs]) if segs else np.zeros(0)
            clicks = sum((vol[i] * rates[i][0][picks[i]] for i in range(len(segs))), np.zeros(len(cands)))
            spend = sum((vol[i] * rates[i][1][picks[i]] for i in range(len(segs))), np.zeros(len(cands)))
            paid = np.minimum(spend[:, None], levels[None, :])  # [cand, level]
            frac = np.where(spend[:, None] > 0, paid / np.maximum(spend[:, None], 1e-12), 1.0)
            total = clicks[:, None] * frac + np.interp(levels[None, :] - paid, levels, v_next)
            best = np.argmax(total, axis=0)
            lam_table[t] = cands[best]
            v_next = total[best, np.arange(len(levels))]
        self._lambda = lam_table
        return lam_table

    # -- acting ---------------------------------------------------------------------------------

    def _state_of(self, context: Mapping[str, Any] | None) -> tuple[int, int, str]:
        if context is None:
            raise ValueError(
                "BidAgent.choose: context with time_block, segment, remaining_budget is required"
            )
        t = int(context["time_block"])
        if not 0 <= t < self.n_blocks:
            raise ValueError(f"BidAgent.choose: time_block must be in [0, {self.n_blocks}); got {t}")
        left = min(max(float(context["remaining_budget"]) / self.budget, 0.0), 1.0)
        return t, round(left * self.budget_levels), str(context["segment"])

    def q_values(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> dict[ArmID, float]:
        """Q of each arm in the state given by ``context`` (per request, up to the volume factor)."""
        t, level, segment = self._state_of(context)
        lam = float(self._plan()[t, level])
        value, cost = self._rates(segment, [str(a) for a in arms])
        return dict(zip(arms, (value - lam * cost).tolist(), strict=True))

    def choose(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> tuple[ArmID, float]:
        check_arms(arms, "BidAgent.choose")
        q = self.q_values(context, arms)
        best = max(q.values())
        ties = [i for i, a in enumerate(arms) if q[a] == best]
        eps, k = self.epsilon, len(arms)
        if self._rng.random() < eps:
            i = self._rng.randrange(k)
        else:
            i = ties[0] if len(ties) == 1 else self._rng.choice(ties)
        p = eps / k + ((1 - eps) / len(ties) if q[arms[i]] == best else 0.0)
        return arms[i], p

    def bid(self, context: Mapping[str, Any], arm: ArmID) -> float:
        """The capped bid for ``arm``: ``min(base_bid * multiplier, max_bid, remaining_budget)``."""
        return self._caps.cap(float(context["base_bid"]) * float(arm), float(context["remaining_budget"]))
