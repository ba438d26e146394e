"""Build the learner of a (campaign, agent) key from config, and update it from aggregate rows.

Pure Python (no Flink): the keyed Flink operator is a thin shell around :class:`KeyedLearners`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from learners import LEARNERS, from_params
from learners.base import Learner
from learners.batch import SCALAR_FIELDS, Batch

# Default learner per agent: rewards are real-valued (clicks plus conversion credit, minus cost
# for the bid agent), so Gaussian Thompson sampling over the logged actions.
DEFAULT_SPECS: dict[str, dict[str, Any]] = {
    "creative": {"learner": "ThompsonSampling", "dist": "gaussian"},
    "bid": {"learner": "ThompsonSampling", "dist": "gaussian"},
    "budget": {"learner": "ThompsonSampling", "dist": "gaussian"},
}


@dataclass(frozen=True)
class LearnerSpecs:
    """Which learner class (a name in ``learners.LEARNERS``) and arguments each agent uses.

    >>> LearnerSpecs().build("c01", "creative").to_params()["learner"]
    'ThompsonSampling'
    >>> LearnerSpecs({"bid": {"learner": "Nope"}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: config key 'learners.bid.learner': expected one of ['BidAgent', ...], found 'Nope'
    """

    specs: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: dict(DEFAULT_SPECS))

    def __post_init__(self) -> None:
        merged = {**DEFAULT_SPECS, **{k: dict(v) for k, v in self.specs.items()}}
        for agent, spec in merged.items():
            if spec.get("learner") not in LEARNERS:
                raise ValueError(
                    f"config key 'learners.{agent}.learner': expected one of {sorted(LEARNERS)}, "
                    f"found {spec.get('learner')!r}"
                )
        object.__setattr__(self, "specs", merged)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> LearnerSpecs:
        if not isinstance(mapping, Mapping):
            raise ValueError(f"config key 'learners': expected a mapping of agents, found {mapping!r}")
        return cls(dict(mapping))

    def contextual_agents(self) -> list[str]:
        """The agents whose learner reads the context sums (Σxxᵀ, Σrx), sorted.

        >>> LearnerSpecs({"creative": {"learner": "LinUCB", "features": ["f1"]}}).contextual_agents()
        ['creative']
        """
        return sorted(agent for agent, spec in self.specs.items() if LEARNERS[spec["learner"]].USES_CONTEXT)

    def to_mapping(self) -> dict[str, Any]:
        return {agent: dict(spec) for agent, spec in self.specs.items()}

    def build(self, campaign_id: str, agent: str) -> Learner:
        """A fresh learner, seeded from its key so every replay draws the same numbers."""
        spec = dict(self.specs.get(agent) or DEFAULT_SPECS["creative"])
        cls = LEARNERS[spec.pop("learner")]
        seed = zlib.crc32(f"{campaign_id}|{agent}".encode())
        return cls(**spec, seed=seed)


def batch_from_aggregate(row: Mapping[str, Any]) -> Batch:
    """One row of the SQL micro-batches (``learner_batches``: a key's arms in ``arms``, each a
    mapping or a Flink ``Row`` of ArmStats sums) as a learner batch.

    >>> batch_from_aggregate({"event_time": 5, "arms": [{"arm": "a", "state": "", "trials": 2.0,
    ...     "reward_sum": 1.0, "reward_sq_sum": 1.0, "delayed_sum": 0.0, "ipw_reward_sum": 2.0,
    ...     "cost_sum": 0.0, "wins": 2.0, "xx": None, "rx": None}]}).rows[0].trials
    2.0
    """
    rows = []
    for arm in row["arms"] or ():
        if not isinstance(arm, Mapping):
            arm = arm.as_dict()
        stats: dict[str, Any] = {name: arm[name] for name in SCALAR_FIELDS}
        stats.update(arm=arm["arm"], state=arm.get("state") or "")
        xx, rx = arm.get("xx"), arm.get("rx")
        if xx is not None and rx is not None and len(rx) > 0:
            stats.update(xx=list(xx), rx=list(rx))
        rows.append(stats)
    return Batch.from_rows(rows, window_end=int(row.get("event_time") or 0))


class KeyedLearners:
    """Learners by key over serialized params: an in-memory cache in front of the params the
    caller keeps in durable (Flink keyed) state."""

    def __init__(self, specs: LearnerSpecs, *, cache_size: int = 10_000) -> None:
        self.specs = specs
        self.cache_size = cache_size
        self._cache: dict[tuple[str, str], Learner] = {}

    def learner(self, campaign_id: str, agent: str, stored: Mapping[str, Any] | None) -> Learner:
        key = (campaign_id, agent)
        cached = self._cache.get(key)
        # The cache is only trusted while it matches the durable state (after a restore it won't).
        if cached is not None and (stored is None or stored.get("version") == cached.version):
            return cached
        learner = from_params(stored) if stored is not None else self.specs.build(campaign_id, agent)
        if len(self._cache) >= self.cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = learner
        return learner

    def forget(self, campaign_id: str, agent: str) -> None:
        self._cache.pop((campaign_id, agent), None)
