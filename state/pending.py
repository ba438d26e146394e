"""Publishing that survives a Redis outage: keep the latest record per key, flush when Redis is back.

A Flink operator publishes from its timers; if Redis is down, raising would fail the job and
waiting would stall it. Instead the latest record of each key is held here (older ones are
useless: a serving node only wants the newest policy) and written on a later call.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable

from state.codec import PolicyKey, PolicyRecord
from state.policy_store import PolicyStoreAuthError, PolicyStoreUnavailable, RedisPolicyStore

__all__ = ["Outcome", "PendingPublisher"]

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """What happened to a record handed to :meth:`PendingPublisher.publish`."""

    WRITTEN = "written"  # stored and notified
    STALE = "stale"  # Redis already had an equal or higher version
    PENDING = "pending"  # Redis unavailable: held until a later flush
    PINNED = "pinned"  # an operator pinned the key: its learners' writes are refused
    ADOPT = "adopt"  # an operator rolled the key back: its learners must take over that version


class PendingPublisher:
    """Wraps a :class:`RedisPolicyStore`; never raises :class:`PolicyStoreUnavailable`.

    Parameters
    ----------
    store
        Where records go.
    retry_interval_s
        While Redis is down, :meth:`publish` only queues, and tries Redis again at most this often,
        so a caller with many keys does not pay a connect timeout on every call.
    clock
        Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        store: RedisPolicyStore,
        *,
        retry_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not retry_interval_s >= 0:
            raise ValueError(f"PendingPublisher: retry_interval_s must be >= 0; got {retry_interval_s!r}")
        self.store = store
        self.retry_interval_s = retry_interval_s
        self._clock = clock
        self._pending: dict[PolicyKey, tuple[PolicyRecord, int]] = {}  # record, lineage
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self.last_error: PolicyStoreUnavailable | PolicyStoreAuthError | None = None
        self.failures = 0  # publish attempts that found Redis unavailable

    @property
    def pending(self) -> int:
        """Number of keys waiting for Redis."""
        return len(self._pending)

    def pending_record(self, campaign_id: str, agent: str) -> PolicyRecord | None:
        """The record held for a key, if any."""
        held = self._pending.get((campaign_id, agent))
        return held[0] if held is not None else None

    def publish(self, record: PolicyRecord, *, lineage: int = 0) -> Outcome:
        """Publish ``record`` now, or hold it (replacing an older held record of the same key).

        Held records are written first when the retry interval has passed. A record older than the
        one already held for its key is ``STALE``: it would never be written. ``lineage``: see
        :meth:`RedisPolicyStore.write`.
        """
        with self._lock:
            held = self._hold(record, lineage)
            outcomes = {} if self._clock() < self._retry_at else self._flush_locked()
            if not held:
                return Outcome.STALE
            return outcomes.get(record.key, Outcome.PENDING)

    def flush(self) -> int:
        """Try to write every held record now; returns how many were written (stale ones are dropped)."""
        with self._lock:
            return sum(o is Outcome.WRITTEN for o in self._flush_locked().values())

    # -- internals ------------------------------------------------------------------------------

    def _hold(self, record: PolicyRecord, lineage: int) -> bool:
        current = self._pending.get(record.key)
        if current is not None and record.version <= current[0].version:
            return False
        self._pending[record.key] = (record, lineage)
        return True

    def _flush_locked(self) -> dict[PolicyKey, Outcome]:
        outcomes: dict[PolicyKey, Outcome] = {}
        for key in list(self._pending):
            try:
                record, lineage = self._pending[key]
                write = self.store.write(record, lineage=lineage)
            except (PolicyStoreUnavailable, PolicyStoreAuthError) as exc:
                # A permission taken away at run time (NOPERM) is held and retried like an outage:
                # the job keeps running and its newest policies wait in memory and in Flink state.
                if self.last_error is None:
                    log.warning("PendingPublisher: holding %d policies: %s", len(self._pending), exc)
                self.last_error = exc
                self.failures += 1
                self._retry_at = self._clock() + self.retry_interval_s
                return outcomes
            del self._pending[key]
            outcomes[key] = Outcome(write.status)
        if self.last_error is not None:
            log.info("PendingPublisher: Redis is back; held policies written")
        self.last_error = None
        self._retry_at = 0.0
        return outcomes
