"""The serving-node client: follows the policy store, serves ``choose()`` and capped bids locally.

A background thread keeps a local cache of rebuilt learners up to date:

- at start it loads every current record (SCAN), after noting the stream's last entry;
- it subscribes to the pub/sub channel: a message wakes it up at once (low latency);
- on every wake-up, and at least every ``poll_interval_s``, it reads the stream from the last ID
  it has seen, so whatever it missed while disconnected or busy is caught up (durable, resumable);
  if the stream was trimmed past that ID (or lost), it reloads everything.

``choose()`` and ``bid()`` never touch Redis: a slow or absent Redis only makes policies stale,
and stale or missing policies fall back to a safe default.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis

import learners
from learners.base import check_arms
from learners.batch import ArmID
from learners.safety import SafetyCaps
from state.codec import PolicyKey, PolicyRecord, Rollout
from state.keys import parse_stream_id
from state.policy_cache import (
    CachedPolicy,
    Choice,
    Policy,
    PolicyCache,
    UniformPolicy,
    capped_bid,
    is_stale,
)
from state.policy_store import PolicyStoreAuthError, PolicyStoreUnavailable, RedisPolicyStore

__all__ = ["Bid", "ClientStats", "ServingClient", "candidate_bucket"]

log = logging.getLogger(__name__)

_TICK_S = 0.05
_DISCONNECTED = (PolicyStoreUnavailable, redis.ConnectionError, redis.TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class Bid:
    """A capped bid: ``amount = min(base_bid * multiplier, max_bid, remaining_budget)``; 0 = no bid."""

    amount: float
    multiplier: ArmID
    propensity: float
    policy_version: int
    source: str
    capped: bool  # the caps lowered the agent's bid
    rollout: str | None = None  # as Choice's, while the bid agent has a rollout
    shadow_action: ArmID | None = None
    shadow_propensity: float | None = None


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters of the client's background work (a snapshot)."""

    installed: int  # policy versions installed in the cache
    ignored: int  # records offered with a version not above the cached one
    reloads: int  # full loads (the first one included)
    stream_entries: int  # stream entries read
    wakeups: int  # pub/sub messages received
    disconnects: int  # connection failures of the background thread
    bad_records: int  # records that did not decode or rebuild
    rejected_records: int  # records refused by the checks: non-finite or huge numbers, a future stamp
    policy_errors: int  # choose() calls whose policy raised and fell back to the default


def candidate_bucket(campaign_id: str, agent: str, request_id: str) -> float:
    """Where a request falls in [0, 1) for a rollout's split: the candidate serves it when this is
    below the rollout's share. CRC-32 of ``"<campaign>|<agent>|<request id>"`` (UTF-8) over 2³²: the
    same request goes to the same arm on every node, in any language.

    >>> candidate_bucket("c01", "creative", "imp-1") == candidate_bucket("c01", "creative", "imp-1")
    True
    """
    return zlib.crc32(f"{campaign_id}|{agent}|{request_id}".encode()) / 2**32


# Numbers in params beyond this are refused: no learner's statistic gets near it legitimately.
MAX_PARAM_MAGNITUDE = 1e15


def implausible(record: PolicyRecord, now_ms: float, max_clock_skew_ms: float) -> str | None:
    """Why a decoded record must not be served, or ``None``: a number in its params that is not
    finite or beyond :data:`MAX_PARAM_MAGNITUDE`, or an ``updated_at`` further in the future than
    the clock skew allows (it would never go stale).

    >>> from state.codec import PolicyRecord
    >>> rec = PolicyRecord("c1", "bid", 3, "X", 1, {"learner": "X", "w": [1.0, float("inf")]}, 1_000)
    >>> implausible(rec, now_ms=2_000, max_clock_skew_ms=60_000)
    'params.w[1] is not a finite number (inf)'
    """
    if record.updated_at_ms > now_ms + max_clock_skew_ms:
        return f"updated_at {record.updated_at_ms} is {record.updated_at_ms - now_ms:.0f} ms in the future"
    stack: list[tuple[str, Any]] = [("params", record.params)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{path} is not a finite number ({value})"
        elif (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and abs(value) > MAX_PARAM_MAGNITUDE
        ):
            return f"{path} is out of range ({value})"
    return None


class ServingClient:
    """Local, always-available policies for one serving node.

    Parameters
    ----------
    store_or_url
        A :class:`RedisPolicyStore` (use it for passwords, ACL users and TLS), or a Redis URL.
    key_prefix
        Key prefix when a URL is given; must match the store's when a store is given.
    campaigns
        Follow only these campaigns (all when ``None``).
    stale_after_ms
        A policy published longer ago than this (by its ``updated_at_ms``) is not served.
    default_policy
        What serves a missing or stale policy; uniform over the arms by default.
    caps
        Maximum bid (and minimum); the remaining budget comes with each :meth:`bid` call.
    bid_agent
        Agent name of the bid-multiplier policy used by :meth:`bid`.
    seed
        Makes choices reproducible: seeds the default policy and every rebuilt learner
        (per campaign and agent). ``None``: seeded from the OS.
    poll_interval_s
        Longest wait between stream reads when no pub/sub message arrives.
    on_update
        Called from the background thread with each record installed (keep it short).
    clock_ms
        Wall-clock milliseconds, for staleness (injectable for tests).
    max_clock_skew_ms
        A record stamped further in the future than this is refused (counted in
        ``rejected_records``), as is one whose params hold a non-finite or huge number: the last
        good version keeps serving.
    """

    def __init__(
        self,
        store_or_url: RedisPolicyStore | str,
        *,
        key_prefix: str | None = None,
        campaigns: Iterable[str] | None = None,
        stale_after_ms: float = 600_000,
        default_policy: Policy | None = None,
        caps: SafetyCaps | None = None,
        bid_agent: str = "bid",
        seed: int | None = None,
        poll_interval_s: float = 0.25,
        history: int = 1024,
        on_update: Callable[[PolicyRecord], None] | None = None,
        clock_ms: Callable[[], float] | None = None,
        max_clock_skew_ms: float = 60_000,
    ) -> None:
        if isinstance(store_or_url, RedisPolicyStore):
            if key_prefix is not None and key_prefix != store_or_url.keys.prefix:
                raise ValueError(
                    f"ServingClient: key_prefix {key_prefix!r} differs from the store's "
                    f"{store_or_url.keys.prefix!r}"
                )
            self.store, self._owns_store = store_or_url, False
        elif isinstance(store_or_url, str):
            self.store = RedisPolicyStore(store_or_url, key_prefix=key_prefix or "adloop")
            self._owns_store = True
        else:
            raise ValueError(
                f"ServingClient: expected a RedisPolicyStore or a URL; got {type(store_or_url).__name__}"
            )
        if not stale_after_ms > 0:
            raise ValueError(f"ServingClient: stale_after_ms must be > 0; got {stale_after_ms!r}")
        if not (poll_interval_s > 0 and math.isfinite(poll_interval_s)):
            raise ValueError(f"ServingClient: poll_interval_s must be > 0; got {poll_interval_s!r}")
        self.campaigns = None if campaigns is None else frozenset(campaigns)
        self.stale_after_ms = stale_after_ms
        self.default_policy: Policy = default_policy or UniformPolicy(seed=seed)
        self.caps = caps or SafetyCaps(max_bid=10.0)
        self.bid_agent = bid_agent
        self.seed = seed
        self.poll_interval_s = poll_interval_s
        self.on_update = on_update
        self.max_clock_skew_ms = max_clock_skew_ms
        self._clock_ms = clock_ms or (lambda: time.time() * 1000.0)
        self._cache = PolicyCache(self._build, history=history)
        # Rollouts by key: the rollout and its candidate rebuilt (replaced whole, never mutated).
        self._rollouts: dict[PolicyKey, tuple[Rollout, CachedPolicy]] = {}
        self._default_lock = threading.Lock()
        self._changed = threading.Condition()
        self._last_id: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._pause_requested = threading.Event()
        self._paused = threading.Event()
        self._counts = dict.fromkeys(
            (
                "reloads",
                "stream_entries",
                "wakeups",
                "disconnects",
                "bad_records",
                "rejected_records",
                "policy_errors",
            ),
            0,
        )
        self._reported_errors: set[tuple[PolicyKey, int]] = set()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, *, wait_s: float = 5.0) -> bool:
        """Start the background thread; wait up to ``wait_s`` for the first load of the policies.

        Returns whether the first load finished in time. If Redis is down the client still
        starts (serving the default policy) and keeps retrying.
        """
        if self._thread is not None:
            raise RuntimeError("ServingClient.start: already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="adloop-serving-client", daemon=True)
        self._thread.start()
        return self._ready.wait(wait_s)

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Stop the background thread (and close the store if this client created it)."""
        self._stop.set()
        self._pause_requested.clear()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> ServingClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ready(self) -> bool:
        """Whether the first load of the policies has finished."""
        return self._ready.is_set()

    def pause(self, *, timeout_s: float = 5.0) -> bool:
        """Park the background thread (tests, maintenance); returns whether it parked in time."""
        self._pause_requested.set()
        return self._paused.wait(timeout_s)

    def resume(self) -> None:
        """Let a paused background thread continue; it first catches up from the stream."""
        self._pause_requested.clear()

    # -- serving --------------------------------------------------------------------------------

    def choose(
        self,
        campaign_id: str,
        agent: str,
        context: Mapping[str, Any] | None,
        arms: Sequence[ArmID],
        *,
        request_id: str | None = None,
    ) -> Choice:
        """Choose among ``arms`` with the cached policy of (campaign, agent).

        Falls back to the default policy (``source="default"``, ``policy_version=0``) when the policy
        is missing, stale, or raises on this context (counted in ``policy_errors``). A context that
        lacks a key the policy needs (``Learner.missing_context``; README, "Serving") is the
        caller's mistake, not the policy's: ValueError names the keys, no fallback.

        While the key has a rollout, the candidate serves the requests whose ``request_id`` falls
        in its share (:func:`candidate_bucket`; without a ``request_id`` the control serves), and
        the choice says which arm served; with shadow on, the control's choices carry the
        candidate's. A candidate that raises is counted in ``policy_errors`` and the control serves.
        """
        check_arms(arms, "ServingClient.choose")
        rollout = self._rollouts.get((campaign_id, agent))
        if rollout is None:
            return self._choose_control(campaign_id, agent, context, arms)
        spec, candidate = rollout
        served_by_candidate = (
            request_id is not None and candidate_bucket(campaign_id, agent, str(request_id)) < spec.share
        )
        if served_by_candidate:
            choice = self._choose_with(candidate, agent, campaign_id, context, arms)
            if choice is not None:
                return replace(choice, rollout="candidate")
        choice = replace(self._choose_control(campaign_id, agent, context, arms), rollout="control")
        if spec.shadow and not served_by_candidate:
            shadow = self._choose_with(candidate, agent, campaign_id, context, arms)
            if shadow is not None:
                choice = replace(choice, shadow_action=shadow.action, shadow_propensity=shadow.propensity)
        return choice

    def _choose_control(
        self, campaign_id: str, agent: str, context: Mapping[str, Any] | None, arms: Sequence[ArmID]
    ) -> Choice:
        entry = self._cache.get((campaign_id, agent))
        if entry is not None and not is_stale(
            entry.record.updated_at_ms, self._clock_ms(), self.stale_after_ms
        ):
            choice = self._choose_with(entry, agent, campaign_id, context, arms)
            if choice is not None:
                return choice
        with self._default_lock:
            action, propensity = self.default_policy.choose(context, arms)
        return Choice(action, propensity, 0, "default")

    def _choose_with(
        self,
        entry: CachedPolicy,
        agent: str,
        campaign_id: str,
        context: Mapping[str, Any] | None,
        arms: Sequence[ArmID],
    ) -> Choice | None:
        """The choice of ``entry``'s policy; ``None`` when it raised (counted, logged once per
        version); ValueError when the context lacks a key it needs."""
        missing = entry.policy.missing_context(context) if hasattr(entry.policy, "missing_context") else []
        if missing:
            raise ValueError(
                f"ServingClient.choose: the {agent} policy of {campaign_id} "
                f"({type(entry.policy).__name__}) needs context key(s) {missing}; "
                f"got {sorted(context or {})}"
            )
        try:
            with entry.lock:
                action, propensity = entry.policy.choose(context, arms)
            return Choice(action, propensity, entry.record.version, "policy")
        except (ValueError, KeyError, TypeError) as exc:
            self._count("policy_errors")
            marker = (entry.record.key, entry.record.version)
            if marker not in self._reported_errors:
                self._reported_errors.add(marker)
                log.warning(
                    "ServingClient: policy %s v%d failed, serving the default: %s",
                    entry.record.key,
                    entry.record.version,
                    exc,
                )
            return None

    def rollout(self, campaign_id: str, agent: str) -> Rollout | None:
        """The key's rollout as this client follows it, or ``None``."""
        found = self._rollouts.get((campaign_id, agent))
        return found[0] if found is not None else None

    def segment(
        self, campaign_id: str, features: Sequence[float], n_segments: int, *, request_id: str | None = None
    ) -> Choice:
        """The segment agent's segment of a user: the label (``k0`` ...) of the centre nearest to
        the user's ``features`` (the impression's feature vector), propensity 1; a uniform label
        while the campaign has no segment policy. Pass it on as ``context["segment"]`` to the
        creative and bid agents, and log it as the record's ``segment``. ``request_id``: as in
        :meth:`choose`, for a rollout of the segment agent."""
        from learners.segment_agent import segment_labels

        labels = segment_labels(n_segments)
        return self.choose(
            campaign_id, "segment", {"features": list(features)}, labels, request_id=request_id
        )

    def bid(
        self,
        campaign_id: str,
        context: Mapping[str, Any],
        base_bid: float,
        multipliers: Sequence[ArmID],
        *,
        request_id: str | None = None,
    ) -> Bid:
        """The bid agent's multiplier on ``base_bid``, capped at ``caps.max_bid`` and the budget left.

        ``context`` must hold ``remaining_budget`` (the campaign's); it is passed to the agent with
        ``base_bid`` added. A bid of 0 means: do not bid. ``request_id``: as in :meth:`choose`, for
        a rollout of the bid agent (the bid says which arm served it).
        """
        if "remaining_budget" not in context:
            raise ValueError(
                f"ServingClient.bid: context must contain 'remaining_budget'; got keys {sorted(context)}"
            )
        remaining = float(context["remaining_budget"])
        choice = self.choose(
            campaign_id, self.bid_agent, {**context, "base_bid": base_bid}, multipliers, request_id=request_id
        )
        amount = capped_bid(self.caps, base_bid, choice.action, remaining)
        raw = base_bid * float(choice.action)
        return Bid(
            amount,
            choice.action,
            choice.propensity,
            choice.policy_version,
            choice.source,
            amount < raw,
            choice.rollout,
            choice.shadow_action,
            choice.shadow_propensity,
        )

    def remaining_budget(
        self, campaign_id: str, now_ms: int, agents: Sequence[str] = ("budget", "bid")
    ) -> float | None:
        """The campaign's daily budget left at ``now_ms`` by the spend the job published with its
        budget (or bid) policy (``None`` when neither is cached and fresh): what a serving node that does
        not see every other node's spend paces against."""
        for agent in agents:
            entry = self._cache.get((campaign_id, agent))
            stale = entry is not None and is_stale(
                entry.record.updated_at_ms, self._clock_ms(), self.stale_after_ms
            )
            if entry is not None and not stale and hasattr(entry.policy, "remaining_budget"):
                with entry.lock:
                    return float(entry.policy.remaining_budget(now_ms))
        return None

    # -- inspection -----------------------------------------------------------------------------

    def record(self, campaign_id: str, agent: str) -> PolicyRecord | None:
        """The cached record of (campaign, agent), if any (stale or not)."""
        entry = self._cache.get((campaign_id, agent))
        return entry.record if entry is not None else None

    def version(self, campaign_id: str, agent: str) -> int:
        """The cached policy version of (campaign, agent); 0 when none."""
        return self._cache.version((campaign_id, agent))

    def versions_seen(self, campaign_id: str, agent: str) -> tuple[int, ...]:
        """Versions installed for (campaign, agent), oldest first: they only ever go up."""
        return self._cache.versions_seen((campaign_id, agent))

    def wait_for_version(self, campaign_id: str, agent: str, version: int, *, timeout_s: float) -> bool:
        """Block until (campaign, agent) has ``version`` or higher; returns whether it happened in time."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self.version(campaign_id, agent) < version:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def stats(self) -> ClientStats:
        """A snapshot of the counters."""
        return ClientStats(installed=self._cache.installed, ignored=self._cache.ignored, **self._counts)

    # -- background thread ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.store.pubsub()
                self._subscribe(pubsub)
                self._sync()
                self._ready.set()
                backoff = 0.05
                self._listen(pubsub)
            except (
                PolicyStoreAuthError,
                redis.AuthenticationError,
                redis.exceptions.NoPermissionError,
            ) as exc:
                log.error("ServingClient: Redis refused the credentials or a permission: %s", exc)
                backoff = 5.0
            except _DISCONNECTED as exc:
                self._count("disconnects")
                log.warning("ServingClient: Redis unavailable, retrying in %.2f s: %s", backoff, exc)
            except Exception:  # the thread must outlive any surprise; serving goes on meanwhile
                log.exception("ServingClient: background thread error")
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # closing a broken connection may fail; it is dropped anyway
                        pass
            self._wait_paused_or(backoff)
            backoff = min(backoff * 2, 2.0)

    def _subscribe(self, pubsub: Any) -> None:
        pubsub.subscribe(self.store.keys.channel)
        # Wait for the confirmation, so every later write also wakes us up.
        deadline = time.monotonic() + self.store.socket_timeout_s
        while time.monotonic() < deadline:
            msg = pubsub.get_message(timeout=max(deadline - time.monotonic(), 0.0))
            if msg is not None and msg["type"] == "subscribe":
                return
        raise PolicyStoreUnavailable(
            f"ServingClient: no subscribe confirmation on {self.store.keys.channel!r} from {self.store.where}"
        )

    def _sync(self) -> None:
        """Load everything on the first connect or when the stream lost entries we did not read."""
        bounds = self.store.stream_bounds()
        if self._last_id is None or self._missed_entries(self._last_id, bounds):
            last_id = bounds[1] if bounds is not None else "0-0"  # noted before loading: nothing lost
            campaigns = None if self.campaigns is None else sorted(self.campaigns)
            for record in self.store.load_all(campaigns):
                self._install(record)
            rollouts = {r.candidate.key: r for r in self.store.load_rollouts(campaigns)}
            for key in set(self._rollouts) | set(rollouts):
                self._install_rollout(key, rollouts.get(key))
            self._last_id = last_id
            self._count("reloads")
        self._catch_up()

    @staticmethod
    def _missed_entries(last_id: str, bounds: tuple[str, str] | None) -> bool:
        if bounds is None:
            return last_id != "0-0"  # the stream is gone (Redis lost its data)
        return parse_stream_id(bounds[0]) > parse_stream_id(last_id)

    def _listen(self, pubsub: Any) -> None:
        next_read = time.monotonic() + self.poll_interval_s
        while not self._stop.is_set():
            if self._pause_requested.is_set():
                self._wait_paused_or(0.0)
                self._sync()  # away for a while: the stream may have been trimmed past our position
            # Wait in short slices so stop() and pause() take effect quickly.
            msg = pubsub.get_message(timeout=min(_TICK_S, max(next_read - time.monotonic(), 0.0)))
            woken = False
            while msg is not None:
                if msg["type"] == "message":
                    woken = True
                    self._count("wakeups")
                msg = pubsub.get_message(timeout=0.0)
            if woken or time.monotonic() >= next_read:
                self._catch_up()
                next_read = time.monotonic() + self.poll_interval_s

    def _catch_up(self, count: int = 1000) -> None:
        while self._last_id is not None and not self._stop.is_set():
            batch = self.store.read_updates(self._last_id, count=count)
            if batch.last_id is None:
                return
            self._count("stream_entries", batch.read)
            newest: dict[PolicyKey, int] = {}
            rollouts: set[PolicyKey] = set()
            for _, note in batch.entries:
                if self.campaigns is not None and note.campaign_id not in self.campaigns:
                    continue
                if note.kind == "rollout":
                    rollouts.add(note.key)
                elif note.version > max(self._cache.version(note.key), newest.get(note.key, 0)):
                    newest[note.key] = note.version
            # The stored record may be newer than the notification; the cache only moves up anyway.
            for record in self.store.get_many(newest, skip_invalid=True).values():
                self._install(record)
            for key in rollouts:
                try:
                    current = self.store.get_rollout(*key)
                except ValueError as exc:
                    self._count("bad_records")
                    log.warning("ServingClient: cannot read the rollout of %s: %s", key, exc)
                    current = None
                self._install_rollout(key, current)
            self._last_id = batch.last_id
            if batch.read < count:
                return

    def _install(self, record: PolicyRecord) -> None:
        problem = implausible(record, self._clock_ms(), self.max_clock_skew_ms)
        if problem is not None:
            self._count("rejected_records")
            log.warning("ServingClient: refusing policy %s v%d: %s", record.key, record.version, problem)
            return  # the last good version stays in the cache
        try:
            installed = self._cache.offer(record)
        except (ValueError, KeyError, TypeError) as exc:
            self._count("bad_records")
            log.warning("ServingClient: cannot rebuild policy %s v%d: %s", record.key, record.version, exc)
            return
        if not installed:
            return
        with self._changed:
            self._changed.notify_all()
        if self.on_update is not None:
            try:
                self.on_update(record)
            except Exception:
                log.exception("ServingClient: on_update failed for %s v%d", record.key, record.version)

    def _install_rollout(self, key: PolicyKey, rollout: Rollout | None) -> None:
        """Follow the key's rollout (``None``: it ended). A candidate that is implausible or does
        not rebuild is refused (counted): the control serves all the key's requests."""
        if rollout is None:
            if self._rollouts.pop(key, None) is not None:
                log.info("ServingClient: rollout of %s ended", key)
            return
        candidate = rollout.candidate
        problem = implausible(candidate, self._clock_ms(), self.max_clock_skew_ms)
        if problem is not None:
            self._count("rejected_records")
            log.warning("ServingClient: refusing the candidate %s v%d: %s", key, candidate.version, problem)
            self._rollouts.pop(key, None)
            return
        current = self._rollouts.get(key)
        if current is not None and current[0].candidate == candidate:
            self._rollouts[key] = (rollout, current[1])  # only the share or shadow changed
            return
        try:
            entry = CachedPolicy(candidate, self._build(candidate, ":candidate"))
        except (ValueError, KeyError, TypeError) as exc:
            self._count("bad_records")
            log.warning("ServingClient: cannot rebuild the candidate %s v%d: %s", key, candidate.version, exc)
            self._rollouts.pop(key, None)
            return
        self._rollouts[key] = (rollout, entry)

    def _build(self, record: PolicyRecord, role: str = "") -> Policy:
        """The policy of ``record``; with a seed, seeded per key and ``role`` (a candidate draws
        apart from its control, so a shadow choice is independent of the served one)."""
        if record.params.get("learner") != record.learner:
            raise ValueError(
                f"record learner {record.learner!r} differs from params['learner'] "
                f"{record.params.get('learner')!r}"
            )
        if self.seed is None:
            return learners.from_params(record.params)
        cls = learners.LEARNERS.get(record.learner)
        if cls is None:
            return learners.from_params(record.params)  # raises the registry's error
        # A stable per-key seed (crc32, not hash(): that is salted per process).
        seed = zlib.crc32(f"{self.seed}:{record.campaign_id}:{record.agent}{role}".encode()) & 0x7FFFFFFF
        return cls.from_params(record.params, seed=seed)

    def _wait_paused_or(self, seconds: float) -> None:
        """Sleep ``seconds`` (until stopped), and stay parked while a pause is requested."""
        self._stop.wait(seconds)
        while self._pause_requested.is_set() and not self._stop.is_set():
            self._paused.set()
            self._stop.wait(0.01)
        self._paused.clear()

    def _count(self, name: str, n: int = 1) -> None:
        self._counts[name] += n
