"""The interface every learner implements, and what they share.

Every learner:

- ``choose(context, arms) -> (arm, propensity)``: the propensity is the probability with which the
  policy picks the returned arm given ``context`` and ``arms``.
- ``update(batch)`` from a :class:`~learners.batch.Batch` of sufficient statistics.
- ``to_params()`` / ``from_params()``: a small, JSON-safe, versioned dict that round-trips exactly.

Params shape, common to all learners::

    {"learner": "ThompsonSampling", "v": 1, "version": 12, "t": 1700000000000,
     "config": {...constructor arguments...}, ...learner state...}

``v`` is the params schema version, ``version`` counts the updates applied (the policy version),
``t`` is the event time the state is discounted to (``None`` before the first update).
No random-generator state is stored: the generator is re-seeded from ``seed`` and ``version`` after
every update and on ``from_params``, so two copies of the same params choose identically.
"""

from __future__ import annotations

import abc
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from learners.batch import ArmID, Batch

__all__ = ["Learner", "compact", "check_arms", "round9"]

Params = dict[str, Any]


def compact(x: float) -> float | int:
    """Shortest exact JSON form of a float: integral values become ints.

    >>> compact(3.0), compact(0.25)
    (3, 0.25)
    """
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else float(x)


def round9(x: float) -> float:
    """Nine significant digits: discounted evidence keeps far more precision than its noise needs,
    and its JSON stays short (``12.3456789`` instead of ``12.345678901234567``).

    >>> round9(1 / 3)
    0.333333333
    """
    return float(f"{x:.9g}")


def check_arms(arms: Sequence[ArmID], where: str) -> None:
    if len(arms) == 0:
        raise ValueError(f"{where}: arms must be a non-empty sequence; got {arms!r}")


class Learner(abc.ABC):
    """Base class: seeding, versioning, event-time discounting and the params envelope.

    Parameters
    ----------
    half_life_ms
        Event-time half-life of the evidence (creative fatigue). ``None`` keeps everything.
        Discounting is by ``Batch.window_end``, so splitting a batch into smaller batches with the
        same ``window_end`` gives the same state, and a late batch is discounted on arrival.
    seed
        Seed of the generator used by ``choose``; ``None`` draws one from the OS on construction.
    """

    PARAMS_SCHEMA: ClassVar[int] = 1
    # Whether updates read the context sums (Σxxᵀ, Σrx); the SQL micro-batches compute them only
    # for the agents whose learner does.
    USES_CONTEXT: ClassVar[bool] = False
    # Whether the learner keys its evidence by the decisions' logged segment (the micro-batches'
    # ``state`` is then the segment), and whether updates read a sample of the impressions'
    # feature vectors (``Batch.samples``), taken at the share ``sample_rate`` of its config.
    USES_SEGMENT: ClassVar[bool] = False
    USES_SAMPLES: ClassVar[bool] = False
    # Constructor arguments that come from the campaign table (learners.campaigns), per campaign,
    # never from the learner's config section.
    CAMPAIGN_ARGS: ClassVar[tuple[str, ...]] = ()
    # Constructor arguments that may change under learned state: when only these differ between a
    # key's stored params and its config, the state is kept under the new values (see
    # learners.registry.KeyedLearners); any other change starts the key afresh.
    RETUNABLE: ClassVar[tuple[str, ...]] = ("half_life_ms",)
    # Keys ``choose`` reads from its context (serving nodes must send them; README, "Serving").
    CONTEXT_KEYS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, half_life_ms: float | None = None, seed: int | None = None) -> None:
        if half_life_ms is not None and not (half_life_ms > 0 and math.isfinite(half_life_ms)):
            raise ValueError(
                f"{type(self).__name__}: half_life_ms must be a positive number or None; got {half_life_ms!r}"
            )
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"{type(self).__name__}: seed must be an int or None; got {seed!r}")
        self.half_life_ms = half_life_ms
        self.seed = seed
        self._seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
        self._version = 0
        self._t: int | None = None
        self._rng = random.Random()
        self._reseed()

    # -- interface ----------------------------------------------------------------------------

    @abc.abstractmethod
    def choose(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> tuple[ArmID, float]:
        """Pick an arm among ``arms``; return it with the probability of picking it."""

    @abc.abstractmethod
    def _learn(self, batch: Batch, weight: float) -> None:
        """Add the batch's statistics, each multiplied by ``weight`` (the discount of a late batch)."""

    @abc.abstractmethod
    def _scale(self, factor: float) -> None:
        """Multiply the accumulated evidence by ``factor`` (discounting)."""

    @abc.abstractmethod
    def _config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-safe, under their constructor names (without ``seed``)."""

    @abc.abstractmethod
    def _state(self) -> dict[str, Any]:
        """Learned state, JSON-safe and compact."""

    @abc.abstractmethod
    def _load_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`_state`."""

    def _invalidate(self) -> None:  # noqa: B027 - optional hook
        """Drop caches derived from the state (called after every state change)."""

    # -- shared behaviour ---------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Number of updates applied since the learner was created."""
        return self._version

    def update(self, batch: Batch) -> None:
        """Absorb one micro-batch of sufficient statistics."""
        if not isinstance(batch, Batch):
            raise ValueError(f"{type(self).__name__}.update: expected a Batch; got {type(batch).__name__}")
        weight = 1.0
        if self.half_life_ms is not None and self._t is not None:
            dt = batch.window_end - self._t
            if dt > 0:
                self._scale(0.5 ** (dt / self.half_life_ms))
            elif dt < 0:
                weight = 0.5 ** (-dt / self.half_life_ms)
        if self._t is None or batch.window_end > self._t:
            self._t = batch.window_end
        self._learn(batch, weight)
        self._version += 1
        self._invalidate()
        self._reseed()

    def discount(self, factor: float) -> None:
        """Keep ``factor`` (in (0, 1]) of the evidence learned so far: on reward drift
        (``learners.drift``) what came before the change weighs little against what follows."""
        if not 0 < factor <= 1:
            raise ValueError(f"{type(self).__name__}.discount: factor must be in (0, 1]; got {factor!r}")
        self._scale(factor)
        self._invalidate()

    def missing_context(self, context: Mapping[str, Any] | None) -> list[str]:
        """The context keys ``choose`` needs that ``context`` lacks (none: it can choose).

        >>> from learners import BudgetPacer
        >>> BudgetPacer(100.0).missing_context({"time_block": 3})
        ['remaining_budget']
        """
        return [key for key in self.CONTEXT_KEYS if context is None or key not in context]

    def carry_spend(self, stored: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Take the campaign's spend today from ``stored`` params (budget learners only)."""

    def continue_from(self, version: int) -> None:
        """Number this learner's next update after ``version`` (a key restarted under a new config
        goes on from its published version, so serving nodes take what it publishes next)."""
        self._version = max(self._version, int(version))
        self._reseed()

    def _reseed(self) -> None:
        self._rng.seed(self._seed * 1_000_003 + self._version)

    def to_params(self) -> Params:
        """Compact, versioned, JSON-safe params."""
        return {
            "learner": type(self).__name__,
            "v": self.PARAMS_SCHEMA,
            "version": self._version,
            "t": self._t,
            "config": self._config(),
            **self._state(),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, seed: int | None = None) -> Self:
        """Rebuild a learner from :meth:`to_params` output (``seed`` is not part of params)."""
        where = f"{cls.__name__}.from_params"
        if params.get("learner") != cls.__name__:
            raise ValueError(
                f"{where}: params['learner'] must be {cls.__name__!r}; got {params.get('learner')!r}"
            )
        if params.get("v") != cls.PARAMS_SCHEMA:
            raise ValueError(f"{where}: params['v'] must be {cls.PARAMS_SCHEMA}; got {params.get('v')!r}")
        config = dict(params["config"])
        learner = cls._from_config(config, seed)
        learner._version = int(params["version"])
        learner._t = None if params["t"] is None else int(params["t"])
        learner._load_state(params)
        learner._invalidate()
        learner._reseed()
        return learner

    @classmethod
    def _from_config(cls, config: dict[str, Any], seed: int | None) -> Self:
        return cls(**config, seed=seed)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({args})"
