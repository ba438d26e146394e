"""Shared storage for non-contextual bandits: a small vector of floats per arm."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from learners.base import Learner, compact, round9
from learners.batch import ArmID, ArmStats, Batch

__all__ = ["ArmBandit"]


class ArmBandit(Learner):
    """A learner whose state is ``{arm: [f_0, f_1, ...]}`` with the fields named in ``FIELDS``.

    Params store the arms and their vectors as two parallel lists, which keeps arm ids' JSON types
    (``int`` stays ``int``) and costs a few bytes per arm. Evidence that has been discounted (with
    ``half_life_ms``) is rounded to nine significant digits, so it stays compact; undiscounted sums
    of integral counts stay exact integers.
    """

    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, half_life_ms: float | None = None, seed: int | None = None) -> None:
        super().__init__(half_life_ms=half_life_ms, seed=seed)
        self._stats: dict[ArmID, list[float]] = {}

    def _fields(self) -> tuple[str, ...]:
        return self.FIELDS

    def _row_values(self, row: ArmStats) -> list[float]:
        raise NotImplementedError

    def _learn(self, batch: Batch, weight: float) -> None:
        for row in batch.rows:
            values = self._row_values(row)
            acc = self._stats.get(row.arm)
            if acc is None:
                acc = self._stats[row.arm] = [0.0] * len(self._fields())
            for i, v in enumerate(values):
                acc[i] = acc[i] + v if weight == 1.0 else round9(acc[i] + weight * v)

    def _scale(self, factor: float) -> None:
        for acc in self._stats.values():
            for i in range(len(acc)):
                acc[i] = round9(acc[i] * factor)

    def _state(self) -> dict[str, Any]:
        return {
            "arms": list(self._stats),
            "stats": [[compact(v) for v in acc] for acc in self._stats.values()],
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        arms, stats = state["arms"], state["stats"]
        if len(arms) != len(stats):
            raise ValueError(
                f"{type(self).__name__}.from_params: 'arms' and 'stats' must have the same length; "
                f"got {len(arms)} and {len(stats)}"
            )
        self._stats = {}
        for arm, acc in zip(arms, stats, strict=True):
            if len(acc) != len(self._fields()):
                raise ValueError(
                    f"{type(self).__name__}.from_params: stats of arm {arm!r} must be "
                    f"{list(self._fields())}; got {acc!r}"
                )
            self._stats[arm] = [float(v) for v in acc]

    def trials(self) -> float | None:
        """Trials held over all arms, as discounted; None for a bandit that keeps no trial counts
        (its first field is not ``trials``: Exp3)."""
        if self._fields()[:1] != ("trials",):
            return None
        return float(sum(acc[0] for acc in self._stats.values()))

    def stats(self, arm: ArmID) -> dict[str, float]:
        """Accumulated statistics of one arm (zeros for an unseen arm)."""
        acc = self._stats.get(arm, [0.0] * len(self._fields()))
        return dict(zip(self._fields(), acc, strict=True))
