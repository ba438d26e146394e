"""Micro-batch sufficient statistics: the contract between Flink SQL and the learners.

The Flink SQL side (JVM) aggregates reward rows per ``(campaign_id, agent)`` micro-batch and emits
one row per ``(state, arm)``. A learner consumes those rows through ``update(batch)``; it never sees
individual events, so Python cost grows with active keys and arms, not with traffic.

Fields of one aggregate row (:class:`ArmStats`), all sums over the micro-batch:

``arm``
    The action: a creative id, a bid multiplier, a pacing rate (``str`` or ``int``).
``state``
    Discretised state key for the RL agents (e.g. ``"3|young"`` = time block 3, segment young);
    ``""`` for the bandits.
``trials``
    Count of *initial* rewards. Each initial reward is one trial, emitted when the click window of
    the decision closes (a decision with no click is a trial with reward 0).
``reward_sum`` / ``reward_sq_sum``
    Sum and sum of squares of the initial rewards.
``delayed_sum``
    Sum of *delayed* reward increments (conversion credit arriving after the click window). It adds
    reward to the arm but never adds trials.
``ipw_reward_sum``
    Sum of ``reward / propensity`` over initial and delayed rewards, each divided by the propensity
    logged with the decision that earned it. Exp3 uses it as its importance-weighted estimate.
``cost_sum``
    Spend (win price paid) attributed to the rows; used by the bid and budget agents.
``wins``
    Auctions won among the trials (bid agent: the value per win, e.g. the CTR, does not depend on
    the bid, so value = win rate x value per win is estimated from many wins, not few clicks).
``xx`` / ``rx``
    Contextual learners only: ``Σ x xᵀ`` over the initial rows (flat, row-major, ``d * d`` values)
    and ``Σ r x`` over initial and delayed rows (``d`` values), ``x`` being the numeric context of
    the decision, in the learner's feature order. Their count is ``trials``.

A :class:`Batch` also carries ``window_end`` (event time in epoch ms of the end of the micro-batch
window), which learners with a half-life use to discount older evidence, and, for learners that
read them (``USES_SAMPLES``: the segment agent), ``samples``: the feature vectors of a sample of
the batch's impressions (``batches`` SQL: a share of them chosen by a hash of the impression id,
so every replay samples the same impressions; which batch carries one follows the batches' clock).

>>> batch = Batch.from_events(
...     [
...         {"arm": "a", "reward": 1.0, "propensity": 0.5},
...         {"arm": "a", "reward": 0.0, "propensity": 0.5},
...         {"arm": "a", "reward": 0.25, "propensity": 0.5, "delayed": True},
...     ],
...     window_end=60_000,
... )
>>> batch.rows[0]
ArmStats(arm='a', state='', trials=2.0, reward_sum=1.0, reward_sq_sum=1.0, delayed_sum=0.25, \
ipw_reward_sum=2.5, cost_sum=0.0, wins=0.0, xx=None, rx=None)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["ArmID", "ArmStats", "Batch", "SCALAR_FIELDS"]

ArmID = str | int

SCALAR_FIELDS = ("trials", "reward_sum", "reward_sq_sum", "delayed_sum", "ipw_reward_sum", "cost_sum", "wins")


def _check_finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"ArmStats: {name} must be a finite number; got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ArmStats:
    """Sufficient statistics of one arm (in one state) over one micro-batch; see module doc."""

    arm: ArmID
    state: str = ""
    trials: float = 0.0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0
    delayed_sum: float = 0.0
    ipw_reward_sum: float = 0.0
    cost_sum: float = 0.0
    wins: float = 0.0
    xx: tuple[float, ...] | None = None
    rx: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.arm, str | int) or isinstance(self.arm, bool):
            raise ValueError(f"ArmStats: arm must be a str or int; got {type(self.arm).__name__}")
        for name in SCALAR_FIELDS:
            object.__setattr__(self, name, _check_finite(name, getattr(self, name)))
        if self.trials < 0 or self.reward_sq_sum < 0 or self.cost_sum < 0 or self.wins < 0:
            raise ValueError(
                "ArmStats: trials, reward_sq_sum, cost_sum and wins must be >= 0; got "
                f"{self.trials}, {self.reward_sq_sum}, {self.cost_sum}, {self.wins}"
            )
        if (self.xx is None) != (self.rx is None):
            raise ValueError("ArmStats: xx and rx must be given together")
        if self.xx is not None and self.rx is not None:
            rx = tuple(_check_finite("rx", v) for v in self.rx)
            xx = tuple(_check_finite("xx", v) for v in self.xx)
            if len(xx) != len(rx) ** 2:
                raise ValueError(f"ArmStats: xx must hold d*d={len(rx) ** 2} values; got {len(xx)}")
            object.__setattr__(self, "xx", xx)
            object.__setattr__(self, "rx", rx)

    @property
    def total_reward(self) -> float:
        """Initial plus delayed reward."""
        return self.reward_sum + self.delayed_sum

    @property
    def dim(self) -> int:
        """Context dimension ``d`` (0 for non-contextual rows)."""
        return 0 if self.rx is None else len(self.rx)

    def __add__(self, other: ArmStats) -> ArmStats:
        if (other.arm, other.state) != (self.arm, self.state):
            raise ValueError(f"ArmStats: cannot add {other.arm!r} to {self.arm!r}")
        if self.dim and other.dim and self.dim != other.dim:
            raise ValueError(f"ArmStats: context dimension mismatch, {self.dim} vs {other.dim}")
        sums = {name: getattr(self, name) + getattr(other, name) for name in SCALAR_FIELDS}
        xx, rx = self.xx, self.rx
        if other.xx is not None and other.rx is not None:
            if xx is None or rx is None:
                xx, rx = other.xx, other.rx
            else:
                xx = tuple(a + b for a, b in zip(xx, other.xx, strict=True))
                rx = tuple(a + b for a, b in zip(rx, other.rx, strict=True))
        return replace(self, xx=xx, rx=rx, **sums)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-safe) with the same field names."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["xx"] = None if self.xx is None else list(self.xx)
        out["rx"] = None if self.rx is None else list(self.rx)
        return out


def _flatten(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    flat: list[float] = []
    for v in value:
        if isinstance(v, Iterable) and not isinstance(v, str | bytes):
            flat.extend(float(u) for u in v)
        else:
            flat.append(float(v))
    return tuple(flat)


@dataclass(frozen=True, slots=True)
class Batch:
    """One micro-batch of aggregates; rows are merged so each ``(state, arm)`` appears once."""

    rows: tuple[ArmStats, ...]
    window_end: int = 0
    samples: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        samples = tuple(tuple(float(v) for v in vector) for vector in self.samples if vector is not None)
        object.__setattr__(self, "samples", samples)
        merged: dict[tuple[str, ArmID], ArmStats] = {}
        for row in self.rows:
            if not isinstance(row, ArmStats):
                raise ValueError(f"Batch: rows must be ArmStats; got {type(row).__name__}")
            key = (row.state, row.arm)
            merged[key] = merged[key] + row if key in merged else row
        object.__setattr__(self, "rows", tuple(merged.values()))
        object.__setattr__(self, "window_end", int(self.window_end))

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, Any]],
        *,
        window_end: int = 0,
        samples: Iterable[Sequence[float]] = (),
    ) -> Batch:
        """Build from aggregate rows (dicts keyed by :class:`ArmStats` field names).

        ``xx`` may be flat (``d * d``) or nested (``d`` lists of ``d``).

        >>> Batch.from_rows([{"arm": 7, "trials": 3, "reward_sum": 1}]).rows[0].trials
        3.0
        """
        names = {f.name for f in fields(ArmStats)}
        out = []
        for row in rows:
            unknown = set(row) - names
            if unknown:
                raise ValueError(f"Batch.from_rows: unknown field(s) {sorted(unknown)}; expected {names}")
            kwargs = dict(row)
            kwargs["xx"] = _flatten(kwargs.get("xx"))
            kwargs["rx"] = _flatten(kwargs.get("rx"))
            if kwargs.get("state") is None:
                kwargs["state"] = ""
            out.append(ArmStats(**kwargs))
        return cls(tuple(out), window_end=window_end, samples=tuple(tuple(v) for v in samples))

    @classmethod
    def from_arrow(cls, table: Any, *, window_end: int = 0) -> Batch:
        """Build from a ``pyarrow.Table`` (or RecordBatch) of aggregate rows."""
        return cls.from_rows(table.to_pylist(), window_end=window_end)

    @classmethod
    def from_events(
        cls,
        events: Iterable[Mapping[str, Any]],
        *,
        features: Sequence[str] | None = None,
        window_end: int = 0,
    ) -> Batch:
        """Aggregate reward rows, as the Flink SQL side does; the pure-Python reference.

        Each event has ``arm`` and ``reward``; optional ``state``, ``propensity`` (default 1),
        ``cost``, ``won`` (default False), ``delayed`` (default False) and, with ``features``, a
        ``context`` mapping.
        """
        acc: dict[tuple[str, ArmID], dict[str, Any]] = {}
        d = len(features) if features is not None else 0
        for ev in events:
            state = ev.get("state") or ""
            key = (state, ev["arm"])
            a = acc.setdefault(key, {n: 0.0 for n in SCALAR_FIELDS} | {"xx": [0.0] * d * d, "rx": [0.0] * d})
            r = float(ev["reward"])
            p = float(ev.get("propensity", 1.0))
            if not 0.0 < p <= 1.0:
                raise ValueError(f"Batch.from_events: propensity must be in (0, 1]; got {p}")
            delayed = bool(ev.get("delayed", False))
            if delayed:
                a["delayed_sum"] += r
            else:
                a["trials"] += 1.0
                a["reward_sum"] += r
                a["reward_sq_sum"] += r * r
            a["ipw_reward_sum"] += r / p
            a["cost_sum"] += float(ev.get("cost", 0.0))
            a["wins"] += float(bool(ev.get("won", False)) and not delayed)
            if features is not None:
                ctx = ev["context"]
                x = [float(ctx[f]) for f in features]
                for i in range(d):
                    a["rx"][i] += r * x[i]
                    if not delayed:
                        for j in range(d):
                            a["xx"][i * d + j] += x[i] * x[j]
        rows = []
        for (state, arm), a in acc.items():
            xx = tuple(a.pop("xx")) if features is not None else None
            rx = tuple(a.pop("rx")) if features is not None else None
            a.pop("xx", None)
            a.pop("rx", None)
            rows.append(ArmStats(arm=arm, state=state, xx=xx, rx=rx, **a))
        return cls(tuple(rows), window_end=window_end)

    def to_rows(self) -> list[dict[str, Any]]:
        """Rows as plain dicts (the inverse of :meth:`from_rows`)."""
        return [row.to_dict() for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)
