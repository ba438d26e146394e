"""Budget agent: pacing a daily budget across time blocks with a throttle (pacing rate)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from learners.base import Learner, check_arms, compact
from learners.batch import ArmID, Batch
from learners.campaigns import SpendToday, parse_agent_state

__all__ = ["BudgetPacer"]


class BudgetPacer(Learner):
    """Throttle-based pacing: the probability of entering an auction, re-planned on every request.

    **Sufficient statistics** (batch rows with ``state = "<day>|<block>|<segment>"``, see
    :func:`learners.campaigns.parse_agent_state`, the segment unused; ``arm`` = pacing-rate label
    such as ``"0.4"``): ``trials`` = requests seen, ``cost_sum`` = spend (from ``ad.auctions``),
    ``reward_sum + delayed_sum`` = attributed value. From them the pacer learns, per block, the
    requests per day and the spend per request entered, hence ``E_t``: the spend of block ``t`` at
    full rate.

    **Policy**: with ``R`` budget left, in block ``t`` with a fraction ``f`` of it elapsed, the target
    rate is ``r* = min(1, R / ((1 - f) E_t + Σ_{u > t} E_u))``: what is left is spread over the
    expected remaining traffic. The offered rate just below and just above ``r*`` are mixed so the
    expected rate is ``r*`` (randomised rounding); the propensity is the mixing probability. Before
    any data the rate is 1. Re-planning on the live remaining budget makes it a closed loop: under-
    spending raises the rate later in the day, over-spending lowers it.

    **Hard cap**: :meth:`admit` refuses any auction whose bid exceeds the remaining budget (the price
    paid never exceeds the bid), so the day never ends over budget.

    Params: ``"blocks"`` (ids), ``"arms"`` (rates), ``"cells"`` (``[requests, cost, value]`` per
    block and rate, block-major), ``"days"``, ``"spend"`` (``[day, amount]``: the campaign's spend on
    its latest day, for the serving nodes' budget left, :meth:`remaining_budget`).

    Examples
    --------
    >>> from learners.batch import Batch
    >>> pacer = BudgetPacer(100.0, n_blocks=4, seed=0)
    >>> rows = [{"state": f"0|{t}|all", "arm": "1", "trials": 1000, "cost_sum": 50.0} for t in range(4)]
    >>> pacer.update(Batch.from_rows(rows, window_end=86_400_000 - 1))
    >>> pacer.target_rate({"time_block": 0, "remaining_budget": 100.0})
    0.5
    >>> pacer.choose({"time_block": 0, "remaining_budget": 100.0}, ["0", "0.25", "0.5", "0.75", "1"])
    ('0.5', 1.0)
    >>> arm, p = pacer.choose({"time_block": 3, "remaining_budget": 40.0}, ["0", "0.5", "1"])
    >>> arm, round(p, 6)  # r* = 0.8: rate 1 with probability 0.6, rate 0.5 with 0.4
    ('1', 0.6)
    >>> pacer.admit(remaining_budget=0.1, bid=0.25)
    False
    """

    CAMPAIGN_ARGS: ClassVar[tuple[str, ...]] = ("budget", "n_blocks")
    CONTEXT_KEYS: ClassVar[tuple[str, ...]] = ("time_block", "remaining_budget")
    RETUNABLE: ClassVar[tuple[str, ...]] = ("budget", "half_life_ms")

    def __init__(
        self,
        budget: float,
        *,
        n_blocks: int = 24,
        half_life_ms: float | None = None,
        seed: int | None = None,
    ) -> None:
        if not (budget > 0 and math.isfinite(budget)):
            raise ValueError(f"BudgetPacer: budget must be a positive number; got {budget!r}")
        if not (isinstance(n_blocks, int) and n_blocks >= 1):
            raise ValueError(f"BudgetPacer: n_blocks must be an int >= 1; got {n_blocks!r}")
        super().__init__(half_life_ms=half_life_ms, seed=seed)
        self.budget = budget
        self.n_blocks = n_blocks
        self._cells: dict[tuple[int, str], list[float]] = {}  # (block, rate) -> [requests, cost, value]
        self._days = 0
        self._last_day: int | None = None
        self._spend = SpendToday()
        self._full_spend: list[float] | None = None

    def _config(self) -> dict[str, Any]:
        return {"budget": self.budget, "n_blocks": self.n_blocks, "half_life_ms": self.half_life_ms}

    def _learn(self, batch: Batch, weight: float) -> None:
        for row in batch.rows:
            day, block, _ = parse_agent_state(row.state, self.n_blocks, "BudgetPacer.update")
            try:
                rate = float(row.arm)
            except ValueError:
                rate = math.nan
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"BudgetPacer.update: arm must be a pacing rate in [0, 1]; got {row.arm!r}")
            if self._last_day is None or day > self._last_day:
                self._days += 1
                self._last_day = day
            self._spend.add(day, row.cost_sum)
            cell = self._cells.setdefault((block, str(row.arm)), [0.0, 0.0, 0.0])
            cell[0] += weight * row.trials
            cell[1] += weight * row.cost_sum
            cell[2] += weight * row.total_reward

    def _scale(self, factor: float) -> None:
        for cell in self._cells.values():
            cell[:] = [v * factor for v in cell]

    def _state(self) -> dict[str, Any]:
        blocks = sorted({b for b, _ in self._cells})
        arms = sorted({a for _, a in self._cells}, key=float)
        zero = [0.0, 0.0, 0.0]
        return {
            "blocks": blocks,
            "arms": arms,
            "cells": [[compact(v) for v in self._cells.get((b, a), zero)] for b in blocks for a in arms],
            "days": self._days,
            "last_day": self._last_day,
            "spend": self._spend.to_json(),
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        blocks, arms, cells = state["blocks"], state["arms"], state["cells"]
        if len(cells) != len(blocks) * len(arms):
            raise ValueError(
                f"BudgetPacer.from_params: expected {len(blocks) * len(arms)} cells; got {len(cells)}"
            )
        self._cells = {}
        for i, b in enumerate(blocks):
            for j, a in enumerate(arms):
                cell = [float(v) for v in cells[i * len(arms) + j]]
                if any(cell):
                    self._cells[(int(b), str(a))] = cell
        self._days = int(state["days"])
        self._last_day = state["last_day"]
        self._spend = SpendToday.from_json(state.get("spend"))

    def _invalidate(self) -> None:
        self._full_spend = None

    def carry_spend(self, stored: Mapping[str, Any]) -> None:
        self._spend = SpendToday.from_json(stored.get("spend"))

    def remaining_budget(self, now_ms: int) -> float:
        """The campaign's budget left at ``now_ms`` by the spend the job has seen today."""
        return self._spend.remaining(self.budget, now_ms)

    def full_rate_spend(self) -> list[float]:
        """``E_t``: expected spend of each block per day at pacing rate 1 (0 when nothing is known)."""
        if self._full_spend is not None:
            return self._full_spend
        days = max(self._days, 1)
        requests = [0.0] * self.n_blocks
        entered = [0.0] * self.n_blocks
        cost = [0.0] * self.n_blocks
        for (b, a), (n, c, _) in self._cells.items():
            requests[b] += n
            entered[b] += n * float(a)
            cost[b] += c
        seen = [b for b in range(self.n_blocks) if requests[b] > 0]
        mean_requests = sum(requests[b] for b in seen) / len(seen) if seen else 0.0
        all_entered = sum(entered)
        mean_unit = sum(cost) / all_entered if all_entered > 0 else 0.0
        out = []
        for b in range(self.n_blocks):
            req = requests[b] if requests[b] > 0 else mean_requests
            unit = cost[b] / entered[b] if entered[b] > 0 else mean_unit
            out.append(req / days * unit)
        self._full_spend = out
        return out

    def target_rate(self, context: Mapping[str, Any] | None) -> float:
        """``r*`` for the request described by ``context`` (``time_block``, ``remaining_budget``,
        optional ``block_elapsed`` in [0, 1))."""
        if context is None:
            raise ValueError("BudgetPacer.choose: context with time_block and remaining_budget is required")
        t = int(context["time_block"])
        if not 0 <= t < self.n_blocks:
            raise ValueError(f"BudgetPacer.choose: time_block must be in [0, {self.n_blocks}); got {t}")
        left = max(float(context["remaining_budget"]), 0.0)
        elapsed = min(max(float(context.get("block_elapsed", 0.0)), 0.0), 1.0)
        spend = self.full_rate_spend()
        expected = (1.0 - elapsed) * spend[t] + sum(spend[t + 1 :])
        return 1.0 if expected <= 0 else min(1.0, left / expected)

    def probabilities(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> dict[ArmID, float]:
        """Probability of each offered rate: the two neighbours of ``r*``, mixed to average ``r*``."""
        check_arms(arms, "BudgetPacer.choose")
        target = self.target_rate(context)
        rates = sorted(((float(a), a) for a in arms), key=lambda pair: pair[0])
        probs: dict[ArmID, float] = dict.fromkeys(arms, 0.0)
        if target <= rates[0][0]:
            probs[rates[0][1]] = 1.0
        elif target >= rates[-1][0]:
            probs[rates[-1][1]] = 1.0
        else:
            hi = next(i for i, (r, _) in enumerate(rates) if r >= target)
            (r_lo, a_lo), (r_hi, a_hi) = rates[hi - 1], rates[hi]
            w = (target - r_lo) / (r_hi - r_lo)
            probs[a_lo], probs[a_hi] = 1.0 - w, w
        return probs

    def choose(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> tuple[ArmID, float]:
        probs = self.probabilities(context, arms)
        u, acc = self._rng.random(), 0.0
        for arm in arms:
            acc += probs[arm]
            if probs[arm] > 0 and u < acc:
                return arm, probs[arm]
        arm = max(arms, key=lambda a: probs[a])
        return arm, probs[arm]

    @staticmethod
    def admit(remaining_budget: float, bid: float) -> bool:
        """Hard cap: enter an auction only if even paying the whole bid stays within budget."""
        return 0.0 < bid <= remaining_budget
