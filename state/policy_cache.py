"""The serving node's local view of the policies: a monotonic cache, staleness and the default policy.

Pure logic, no Redis: :mod:`state.serving_client` feeds it from the store.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from learners.base import check_arms
from learners.batch import ArmID
from learners.safety import SafetyCaps
from state.codec import PolicyKey, PolicyRecord

__all__ = [
    "CachedPolicy",
    "Choice",
    "Policy",
    "PolicyCache",
    "UniformPolicy",
    "capped_bid",
    "is_stale",
]

Source = Literal["policy", "default"]


class Policy(Protocol):
    """Anything that picks an arm with its propensity: every learner, and :class:`UniformPolicy`."""

    def choose(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> tuple[ArmID, float]: ...


@dataclass(frozen=True, slots=True)
class Choice:
    """An action, the probability the policy gave it, and which policy chose it.

    ``policy_version`` is 0 and ``source`` is ``"default"`` when the safe default policy chose.
    While the key has a rollout, ``rollout`` says which arm of it served (``control`` or
    ``candidate``) and, with shadow on, a control's choice carries the candidate's choice on the
    same request (``shadow_action``, ``shadow_propensity``), logged, not served.
    """

    action: ArmID
    propensity: float
    policy_version: int
    source: Source
    rollout: str | None = None
    shadow_action: ArmID | None = None
    shadow_propensity: float | None = None


class UniformPolicy:
    """The safe default: uniform over the arms, propensity ``1/n``.

    >>> UniformPolicy(seed=3).choose(None, ["a", "b", "c", "d"])
    ('b', 0.25)
    """

    def __init__(self, *, seed: int | None = None) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def choose(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> tuple[ArmID, float]:
        check_arms(arms, "UniformPolicy.choose")
        return arms[self._rng.randrange(len(arms))], 1.0 / len(arms)


def is_stale(updated_at_ms: int, now_ms: float, stale_after_ms: float) -> bool:
    """Whether a policy published at ``updated_at_ms`` is too old to serve at ``now_ms``.

    A timestamp ahead of the local clock (clock skew) counts as fresh.

    >>> is_stale(1_000, now_ms=61_000, stale_after_ms=60_000), is_stale(1_000, 61_001, 60_000)
    (False, True)
    """
    return now_ms - updated_at_ms > stale_after_ms


def capped_bid(caps: SafetyCaps, base_bid: float, multiplier: ArmID, remaining_budget: float) -> float:
    """``base_bid * multiplier`` under the caps: at most ``max_bid`` and the remaining budget.

    >>> capped_bid(SafetyCaps(max_bid=2.0), 1.5, "2", remaining_budget=10.0)
    2.0
    >>> capped_bid(SafetyCaps(max_bid=2.0), 0.5, "1.5", remaining_budget=0.6)
    0.6
    """
    try:
        factor = float(multiplier)
    except (TypeError, ValueError):
        raise ValueError(
            f"capped_bid: multiplier must be a number or numeric label; got {multiplier!r}"
        ) from None
    if not (math.isfinite(base_bid) and base_bid >= 0):
        raise ValueError(f"capped_bid: base_bid must be a finite number >= 0; got {base_bid!r}")
    return caps.cap(base_bid * factor, remaining_budget)


@dataclass(slots=True)
class CachedPolicy:
    """A record and the policy rebuilt from it; ``lock`` serialises ``choose`` (its generator)."""

    record: PolicyRecord
    policy: Policy
    lock: threading.Lock = field(default_factory=threading.Lock)


class PolicyCache:
    """Policies by (campaign, agent), replaced only by a strictly higher version.

    ``build`` turns a record into a policy (e.g. ``learners.from_params``); it runs only for
    records that will be installed. ``versions_seen`` keeps the last ``history`` installed versions
    of each key, in order, so tests and monitors can check they only go up.

    >>> cache = PolicyCache(lambda record: UniformPolicy(seed=0))
    >>> rec = lambda v: PolicyRecord("c1", "creative", v, "UniformPolicy", 1, {}, 0)
    >>> [cache.offer(rec(v)) for v in (2, 1, 2, 5)]
    [True, False, False, True]
    >>> cache.versions_seen(("c1", "creative")), cache.ignored
    ((2, 5), 2)
    """

    def __init__(self, build: Callable[[PolicyRecord], Policy], *, history: int = 1024) -> None:
        if not (isinstance(history, int) and history >= 1):
            raise ValueError(f"PolicyCache: history must be an int >= 1; got {history!r}")
        self._build = build
        self._history = history
        self._entries: dict[PolicyKey, CachedPolicy] = {}
        self._seen: dict[PolicyKey, deque[int]] = {}
        self._lock = threading.Lock()
        self.installed = 0  # records installed
        self.ignored = 0  # records offered with a version not higher than the cached one

    def version(self, key: PolicyKey) -> int:
        """Cached version of ``key``; 0 when there is none."""
        entry = self._entries.get(key)
        return entry.record.version if entry is not None else 0

    def get(self, key: PolicyKey) -> CachedPolicy | None:
        """The cached policy of ``key``, if any."""
        return self._entries.get(key)

    def keys(self) -> list[PolicyKey]:
        """Keys with a cached policy."""
        return list(self._entries)

    def versions_seen(self, key: PolicyKey) -> tuple[int, ...]:
        """Versions installed for ``key``, oldest first (the last ``history`` of them)."""
        return tuple(self._seen.get(key, ()))

    def offer(self, record: PolicyRecord) -> bool:
        """Install ``record`` if its version is higher than the cached one; return whether it was.

        An error from ``build`` propagates and leaves the cache unchanged.
        """
        with self._lock:
            current = self._entries.get(record.key)
            if current is not None and record.version <= current.record.version:
                self.ignored += 1
                return False
            policy = self._build(record)
            self._entries[record.key] = CachedPolicy(record, policy)
            self._seen.setdefault(record.key, deque(maxlen=self._history)).append(record.version)
            self.installed += 1
            return True
