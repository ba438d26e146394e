"""Build the learner of a (campaign, agent) key from config, and update it from aggregate rows.

Pure Python (no Flink): the keyed Flink operator is a thin shell around :class:`KeyedLearners`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from learners import LEARNERS
from learners.base import Learner
from learners.batch import SCALAR_FIELDS, Batch
from learners.campaigns import CampaignTable
from learners.drift import DriftSettings

# Default learner per agent: the creative agent's rewards are real-valued (clicks plus conversion
# credit), so Gaussian Thompson sampling over the logged creatives, one per segment (PerSegment);
# the bid agent plans bid multipliers against the campaign's budget (BidAgent), the budget agent
# paces it (BudgetPacer); the segment agent clusters users into value segments (SegmentAgent).
DEFAULT_SPECS: dict[str, dict[str, Any]] = {
    "creative": {
        "learner": "PerSegment",
        "base": {"learner": "ThompsonSampling", "dist": "gaussian"},
        "drift": {},  # River's Page-Hinkley on the key's mean reward, default settings
    },
    "bid": {"learner": "BidAgent", "multipliers": ["0.5", "0.75", "1", "1.25", "1.5"]},
    "budget": {"learner": "BudgetPacer"},
    "segment": {"learner": "SegmentAgent"},
}


@dataclass(frozen=True)
class LearnerSpecs:
    """Which learner class (a name in ``learners.LEARNERS``) and arguments each agent uses.

    >>> LearnerSpecs().build("c01", "creative").to_params()["learner"]
    'PerSegment'
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
            for name in LEARNERS[spec["learner"]].CAMPAIGN_ARGS:
                if name in spec:
                    raise ValueError(
                        f"config key 'learners.{agent}.{name}': expected nothing here (it is per "
                        f"campaign: campaigns.budgets, campaigns.daily_budget, campaigns.time_blocks), "
                        f"found {spec[name]!r}"
                    )
        object.__setattr__(self, "specs", merged)
        for agent, spec in merged.items():
            if "drift" in spec:
                try:
                    DriftSettings.from_mapping(spec["drift"])
                except ValueError as exc:
                    raise ValueError(str(exc).replace("'drift", f"'learners.{agent}.drift", 1)) from None
        for agent in merged:  # a bad argument fails at start, not in the first micro-batch
            try:
                self.build("c", agent)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"config key 'learners.{agent}': {exc}") from None

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

    def segmented_agents(self) -> list[str]:
        """The agents whose learner keys its evidence by the logged segment, sorted.

        >>> LearnerSpecs().segmented_agents()
        ['creative']
        """
        return sorted(agent for agent, spec in self.specs.items() if LEARNERS[spec["learner"]].USES_SEGMENT)

    def sample_rates(self) -> dict[str, float]:
        """The agents whose learner reads a sample of the impressions' features, with the share
        to sample (its ``sample_rate``).

        >>> LearnerSpecs().sample_rates()
        {'segment': 0.1}
        """
        return {
            agent: float(self.build("c", agent).sample_rate)  # type: ignore[attr-defined]
            for agent, spec in sorted(self.specs.items())
            if LEARNERS[spec["learner"]].USES_SAMPLES
        }

    def drift(self, agent: str) -> DriftSettings | None:
        """The agent's reward-drift detection (``learners.<agent>.drift``; ``learners.drift``), or
        None when it has none.

        >>> LearnerSpecs().drift("creative").threshold, LearnerSpecs().drift("bid")
        (8.0, None)
        """
        spec = self.specs.get(agent) or {}
        return DriftSettings.from_mapping(spec["drift"]) if "drift" in spec else None

    def to_mapping(self) -> dict[str, Any]:
        return {agent: dict(spec) for agent, spec in self.specs.items()}

    def build(self, campaign_id: str, agent: str, campaigns: CampaignTable | None = None) -> Learner:
        """A fresh learner, seeded from its key so every replay draws the same numbers; a bid or
        budget learner gets the campaign's daily budget and the day's time blocks from ``campaigns``.

        >>> table = CampaignTable(time_blocks=12, budgets={"c01": 150.0})
        >>> LearnerSpecs().build("c01", "budget", table).to_params()["config"]
        {'budget': 150.0, 'n_blocks': 12, 'half_life_ms': None}
        """
        spec = dict(self.specs.get(agent) or DEFAULT_SPECS["creative"])
        spec.pop("drift", None)  # the operator's, next to the learner (learners.drift)
        cls = LEARNERS[spec.pop("learner")]
        table = campaigns or CampaignTable()
        per_campaign = {"budget": table.budget(campaign_id), "n_blocks": table.time_blocks}
        spec.update({name: per_campaign[name] for name in cls.CAMPAIGN_ARGS})
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
    samples = [vector for vector in row.get("samples") or () if vector is not None]
    return Batch.from_rows(rows, window_end=int(row.get("event_time") or 0), samples=samples)


def reconcile(stored: Mapping[str, Any], fresh: Learner) -> tuple[Learner, bool]:
    """The learner of a key from its ``stored`` params under the config it has now (``fresh``,
    built from it), and whether the config had changed.

    The rule, when the config was edited after the params were stored (a restore under a new
    ``adloop.yaml``, a campaign's new budget):

    - same learner class, and only its re-tunable arguments changed (``RETUNABLE``: e.g. a
      budget, an exploration rate, a half-life): the learned state is kept, under the new values;
    - anything else (another class, another arm grid, other features or time blocks): the key
      starts afresh from the new config;
    - either way its versions go on from the stored one, so serving nodes take the next publish,
      and a budget learner keeps the campaign's spend today.

    >>> from learners import ThompsonSampling, UCB
    >>> old = UCB(delta=1.0, seed=0); old.continue_from(7); stored = old.to_params()
    >>> learner, changed = reconcile(stored, UCB(delta=0.5, seed=0))
    >>> type(learner).__name__, learner.version, learner.delta, changed
    ('UCB', 7, 0.5, True)
    >>> learner, changed = reconcile(stored, ThompsonSampling(seed=0))
    >>> type(learner).__name__, learner.version, changed
    ('ThompsonSampling', 7, True)
    """
    cls = type(fresh)
    old = stored.get("config") or {}
    new = fresh.to_params()["config"]
    if stored.get("learner") == cls.__name__ and old == new:
        return cls.from_params(stored, seed=fresh.seed), False
    changed = {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}
    if stored.get("learner") == cls.__name__ and changed <= set(cls.RETUNABLE):
        try:
            return cls.from_params({**stored, "config": new}, seed=fresh.seed), True
        except (ValueError, KeyError, TypeError, IndexError):
            pass  # the state does not load under the new values: start afresh
    fresh.continue_from(int(stored.get("version") or 0))
    fresh.carry_spend(stored)  # what was spent today is a fact, not learned state
    return fresh, True


class KeyedLearners:
    """Learners by key over serialized params: an in-memory cache in front of the params the
    caller keeps in durable (Flink keyed) state. A key whose stored params were made under
    another config is handled by :func:`reconcile` (counted in ``config_changes``)."""

    def __init__(
        self, specs: LearnerSpecs, *, campaigns: CampaignTable | None = None, cache_size: int = 10_000
    ) -> None:
        self.specs = specs
        self.campaigns = campaigns or CampaignTable()
        self.cache_size = cache_size
        self.config_changes = 0
        self._cache: dict[tuple[str, str], Learner] = {}

    def learner(self, campaign_id: str, agent: str, stored: Mapping[str, Any] | None) -> Learner:
        key = (campaign_id, agent)
        cached = self._cache.get(key)
        # The cache is only trusted while it matches the durable state (after a restore it won't).
        if cached is not None and (stored is None or stored.get("version") == cached.version):
            return cached
        learner = self.specs.build(campaign_id, agent, self.campaigns)
        if stored is not None:
            learner, changed = reconcile(stored, learner)
            self.config_changes += changed
        if len(self._cache) >= self.cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = learner
        return learner

    def cached(self, campaign_id: str, agent: str) -> Learner | None:
        """The key's learner in memory, if any: its params are those last stored for the key."""
        return self._cache.get((campaign_id, agent))

    def forget(self, campaign_id: str, agent: str) -> None:
        self._cache.pop((campaign_id, agent), None)
