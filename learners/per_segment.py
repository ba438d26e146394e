"""One bandit per segment: the creative agent with the segment as its context.

The micro-batches of a learner with ``USES_SEGMENT`` carry the decisions' logged segment as the
rows' ``state`` (the segment agent's label, when serving nodes use it). :class:`PerSegment` keeps
one bandit of the configured kind per segment, and one over all segments (``pooled``), which
chooses for a segment that has fewer than ``min_trials`` trials yet, or that it has never seen.

>>> from learners.batch import Batch
>>> learner = PerSegment({"learner": "ThompsonSampling"}, min_trials=10, seed=3)
>>> learner.update(Batch.from_rows([
...     {"arm": "a", "state": "k0", "trials": 200, "reward_sum": 40},
...     {"arm": "b", "state": "k0", "trials": 200, "reward_sum": 4},
...     {"arm": "a", "state": "k1", "trials": 200, "reward_sum": 4},
...     {"arm": "b", "state": "k1", "trials": 200, "reward_sum": 40},
... ]))
>>> learner.choose({"segment": "k0"}, ["a", "b"])[0], learner.choose({"segment": "k1"}, ["a", "b"])[0]
('a', 'b')
>>> round(learner.choose({"segment": "k9"}, ["a", "b"])[1], 2)  # unseen: the pooled bandit, a tie
0.5
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from learners._arm_bandit import ArmBandit
from learners.base import Learner, check_arms
from learners.batch import ArmID, Batch

__all__ = ["PerSegment"]

POOLED = ""


class PerSegment(Learner):
    """A bandit per segment, plus a pooled one; see the module doc.

    Parameters
    ----------
    base
        The bandit's spec: ``{"learner": <name>, ...its arguments}``, a non-contextual bandit
        (``ThompsonSampling``, ``UCB``, ``EpsilonGreedy``, ``Exp3``, ``RiverBandit``).
    min_trials
        Trials a segment's bandit needs before it chooses for its segment.
    max_segments
        Segments kept at most; rows of further segments feed only the pooled bandit (a stream of
        made-up labels cannot grow the params without bound).
    seed
        See :class:`learners.base.Learner`; each bandit's seed is derived from it and its segment.
    """

    USES_SEGMENT: ClassVar[bool] = True
    CONTEXT_KEYS: ClassVar[tuple[str, ...]] = ("segment",)
    RETUNABLE: ClassVar[tuple[str, ...]] = ("min_trials", "max_segments")

    def __init__(
        self,
        base: Mapping[str, Any],
        *,
        min_trials: float = 100.0,
        max_segments: int = 64,
        seed: int | None = None,
    ) -> None:
        from learners import LEARNERS

        name = type(self).__name__
        if not isinstance(base, Mapping) or base.get("learner") not in LEARNERS:
            raise ValueError(f"{name}: base must be a learner spec {{'learner': <name>, ...}}; got {base!r}")
        cls = LEARNERS[base["learner"]]
        if not issubclass(cls, ArmBandit):
            raise ValueError(f"{name}: base must be a non-contextual bandit; got {base['learner']!r}")
        if not (isinstance(min_trials, int | float) and min_trials >= 0):
            raise ValueError(f"{name}: min_trials must be a number >= 0; got {min_trials!r}")
        if (
            not isinstance(max_segments, int)
            or isinstance(max_segments, bool)
            or not 1 <= max_segments <= 10_000
        ):
            raise ValueError(f"{name}: max_segments must be an int in 1..10000; got {max_segments!r}")
        super().__init__(seed=seed)
        self.base = dict(base)
        self.min_trials = min_trials
        self.max_segments = max_segments
        self._cls = cls
        self._args = {k: v for k, v in base.items() if k != "learner"}
        self.pooled = self._build(POOLED)
        self._segments: dict[str, ArmBandit] = {}
        self._trials: dict[str, float] = {}

    def _build(self, segment: str) -> ArmBandit:
        return self._cls(**self._args, seed=zlib.crc32(f"{self._seed}|{segment}".encode()))

    def segment_learner(self, segment: str) -> ArmBandit | None:
        """The bandit of one segment, if it has one."""
        return self._segments.get(segment)

    def _learn(self, batch: Batch, weight: float) -> None:
        self.pooled.update(batch)
        by_segment: dict[str, list] = {}
        for row in batch.rows:
            by_segment.setdefault(row.state, []).append(row)
        for segment, rows in by_segment.items():
            learner = self._segments.get(segment)
            if learner is None:
                if segment == POOLED or len(self._segments) >= self.max_segments:
                    continue
                learner = self._segments[segment] = self._build(segment)
            learner.update(Batch(tuple(rows), window_end=batch.window_end))
            self._trials[segment] = self._trials.get(segment, 0.0) + sum(r.trials for r in rows)

    def _scale(self, factor: float) -> None:
        """Every bandit keeps ``factor`` of its evidence (a drift; the half-life is each bandit's)."""
        for learner in (self.pooled, *self._segments.values()):
            learner.discount(factor)
        self._trials = {s: n * factor for s, n in self._trials.items()}

    def _invalidate(self) -> None:
        # Every bandit takes the wrapper's version: its generator is seeded from it, so the
        # choices depend on the published version alone, as for any learner.
        for learner in (self.pooled, *self._segments.values()):
            learner._version = self._version
            learner._invalidate()
            learner._reseed()

    def choose(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> tuple[ArmID, float]:
        check_arms(arms, "PerSegment.choose")
        if context is None or "segment" not in context:
            raise ValueError("PerSegment.choose: context lacks 'segment'")
        segment = str(context["segment"])
        learner = self._segments.get(segment)
        if learner is None or self._evidence(segment, learner) < self.min_trials:
            learner = self.pooled
        return learner.choose(context, arms)

    def _evidence(self, segment: str, learner: ArmBandit) -> float:
        """The trials a segment's bandit holds: as it discounted them (a half-life, a drift) when
        it keeps trial counts, else as counted here (Exp3)."""
        trials = learner.trials()
        return self._trials.get(segment, 0.0) if trials is None else trials

    # -- params -------------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {"base": dict(self.base), "min_trials": self.min_trials, "max_segments": self.max_segments}

    @staticmethod
    def _inner(learner: Learner) -> dict[str, Any]:
        params = learner.to_params()
        return {k: v for k, v in params.items() if k not in ("learner", "v", "config", "version")}

    def _state(self) -> dict[str, Any]:
        return {
            "pooled": self._inner(self.pooled),
            "segments": {s: self._inner(learner) for s, learner in self._segments.items()},
            "trials": {s: self._trials[s] for s in self._segments},
        }

    def _rebuild(self, segment: str, inner: Mapping[str, Any]) -> ArmBandit:
        template = self._build(segment)
        header = {k: v for k, v in template.to_params().items() if k in ("learner", "v", "config")}
        return self._cls.from_params({**header, **inner, "version": self._version}, seed=template.seed)

    def _load_state(self, state: Mapping[str, Any]) -> None:
        segments, trials = state["segments"], state["trials"]
        if not isinstance(segments, Mapping):
            raise ValueError("PerSegment.from_params: 'segments' must map segments to their bandits")
        # A lowered max_segments keeps the segments first seen, not nothing.
        kept = list(segments.items())[: self.max_segments]
        self.pooled = self._rebuild(POOLED, state["pooled"])
        self._segments = {str(s): self._rebuild(str(s), inner) for s, inner in kept}
        self._trials = {str(s): float(trials.get(s, 0.0)) for s, _ in kept}
