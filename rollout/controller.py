"""Rollout control of one (campaign, agent): feed the sequential test with the reward sums of the
control's and the candidate's decisions, act on its decision, and write an audit record.

- **promote**: the candidate's params become the control's under a new version; the learners
  adopt them (``policy_control.promote_candidate``);
- **rollback**: the rollout ends and the control's params are published again under a new version
  that names the candidate (``rolled_back_from``, ``policy_control.reject_candidate``);
- **extend**: nothing changes; an audit record at most every ``audit_interval_ms``;
- **superseded**: an operator ended or replaced the rollout before the decision was acted on;
  nothing is done.

The shadow's logged choices on the control's requests give off-policy estimates of the candidate
(SNIPS and doubly robust, as ``learners.ope`` computes them from rows) before it serves anyone:
with the shadow's action ``s`` drawn from the candidate on the request whose logged action ``a``
had propensity ``p``, the weight ``1{s = a} / p`` is unbiased for the candidate's value.

While the key's reward drift detector has fired since the rollout started, or an operator has
pinned the key, promotion is frozen: a drop of the control's reward would make any candidate
look better, and a pin means hands off.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from rollout.sequential import ArmTotals, Decision, RolloutSettings, RolloutTest
from state import policy_control
from state.codec import Rollout
from state.policy_store import RedisPolicyStore

__all__ = ["Audit", "ControllerSettings", "RolloutController", "ShadowTotals"]


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    test: RolloutSettings = field(default_factory=RolloutSettings)
    audit_interval_ms: int = 60_000  # an extend is audited at most this often per key


@dataclass(slots=True)
class ShadowTotals:
    """Per (logged action, shadow action) on the control's requests: count, Σ reward, and for the
    matching pairs Σ 1/p and Σ r/p."""

    cells: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(
        self, action: str, shadow: str, n: float, reward: float, inv_p: float, reward_inv_p: float
    ) -> None:
        cell = self.cells.setdefault((action, shadow), [0.0, 0.0, 0.0, 0.0])
        for i, value in enumerate((n, reward, inv_p, reward_inv_p)):
            cell[i] += value

    def estimates(self) -> tuple[float | None, float | None]:
        """(SNIPS, doubly robust) of the candidate's reward per decision; ``None`` without data.
        The DR reward model is the control's mean reward per logged action."""
        n = sum(c[0] for c in self.cells.values())
        weight = sum(c[2] for (a, s), c in self.cells.items() if a == s)
        weighted = sum(c[3] for (a, s), c in self.cells.items() if a == s)
        if n <= 0:
            return None, None
        snips = weighted / weight if weight > 0 else None
        per_action: dict[str, list[float]] = {}
        for (action, _), cell in self.cells.items():
            acc = per_action.setdefault(action, [0.0, 0.0])
            acc[0] += cell[0]
            acc[1] += cell[1]
        q = {a: s / c for a, (c, s) in per_action.items() if c > 0}
        # mean over rows of q(s) + w (r - q(a)): Σ n·q(s) + Σ_matched (Σ r/p - q(a) Σ 1/p)
        direct = sum(cell[0] * q.get(s, 0.0) for (_, s), cell in self.cells.items())
        correction = sum(cell[3] - q.get(a, 0.0) * cell[2] for (a, s), cell in self.cells.items() if a == s)
        return snips, (direct + correction) / n

    def to_state(self) -> list[list[Any]]:
        return [[a, s, *c] for (a, s), c in self.cells.items()]

    @classmethod
    def from_state(cls, state: list[list[Any]] | None) -> ShadowTotals:
        return cls({(str(r[0]), str(r[1])): [float(v) for v in r[2:6]] for r in state or []})


@dataclass(frozen=True, slots=True)
class Audit:
    """One rollout decision, for the audit topic and table."""

    campaign_id: str
    agent: str
    candidate_version: int
    control_version: int
    decision: str
    control_mean: float
    candidate_mean: float
    diff: float
    diff_low: float | None
    diff_high: float | None
    margin_high: float | None
    control_n: float
    candidate_n: float
    shadow_snips: float | None
    shadow_dr: float | None
    frozen: bool
    new_version: int | None
    decided_at_ms: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _KeyState:
    candidate_version: int
    test: RolloutTest
    shadow: ShadowTotals
    drifted: bool = False
    last_audit_ms: int = 0


class RolloutController:
    """Rollout decisions for many keys, their evidence per key in memory, reset when the key's
    candidate changes."""

    def __init__(self, store: RedisPolicyStore, settings: ControllerSettings | None = None) -> None:
        self.store = store
        self.settings = settings or ControllerSettings()
        self._keys: dict[tuple[str, str], _KeyState] = {}

    def _state(self, rollout: Rollout) -> _KeyState:
        key = rollout.candidate.key
        state = self._keys.get(key)
        if state is None or state.candidate_version != rollout.candidate.version:
            state = _KeyState(rollout.candidate.version, RolloutTest(self.settings.test), ShadowTotals())
            self._keys[key] = state
        return state

    def observe(
        self,
        rollout: Rollout,
        *,
        control: ArmTotals | None = None,
        candidate: ArmTotals | None = None,
        shadow: ShadowTotals | None = None,
        drifted: bool = False,
        now_ms: int | None = None,
    ) -> Audit | None:
        """Add one micro-batch of the rollout's evidence, decide, act; the audit record of a
        promotion, a rollback, or an extend due for one (else ``None``)."""
        state = self._state(rollout)
        for mine, new in ((state.test.control, control), (state.test.candidate, candidate)):
            if new is not None:
                mine.add(new.n, new.total, new.squares, new.successes)
        if shadow is not None:
            for (action, shadow_action), cell in shadow.cells.items():
                state.shadow.add(action, shadow_action, *cell)
        state.drifted |= drifted
        decision = state.test.look()
        now = int(time.time() * 1000) if now_ms is None else now_ms
        action = decision.action
        # A drift since the rollout started, or an operator's pin, freezes promotion.
        frozen = action == "promote" and (
            state.drifted or "pinned" in self.store.holds(*rollout.candidate.key)
        )
        if frozen:
            action = "extend"
        if action == "extend" and now - state.last_audit_ms < self.settings.audit_interval_ms:
            return None
        before = self.store.get(*rollout.candidate.key)
        control_version = before.version if before is not None else 0
        new_version = None
        if action in ("promote", "rollback"):
            act = policy_control.promote_candidate if action == "promote" else policy_control.reject_candidate
            written = act(self.store, rollout)
            new_version = written.version if written is not None else None
            if written is None and self.store.get_rollout(*rollout.candidate.key) != rollout:
                action = "superseded"  # an operator ended or replaced the rollout meanwhile
        if action != "extend":
            self._keys.pop(rollout.candidate.key, None)
        else:
            state.last_audit_ms = now
        return self._audit(rollout, decision, action, state, frozen, control_version, new_version, now)

    def _audit(
        self,
        rollout: Rollout,
        decision: Decision,
        action: str,
        state: _KeyState,
        frozen: bool,
        control_version: int,
        new_version: int | None,
        now: int,
    ) -> Audit:
        snips, dr = state.shadow.estimates()
        return Audit(
            rollout.candidate.campaign_id,
            rollout.candidate.agent,
            rollout.candidate.version,
            control_version,
            action,
            decision.control_mean,
            decision.candidate_mean,
            decision.diff,
            decision.diff_low,
            decision.diff_high,
            decision.margin_high,
            decision.control_n,
            decision.candidate_n,
            snips,
            dr,
            frozen,
            new_version,
            now,
        )
