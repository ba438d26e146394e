"""The keyed learner operator: key = (campaign_id, agent); input = SQL micro-batch aggregates, one
row per key and micro-batch with all its arms.

A thin Flink shell over :class:`learners.registry.KeyedLearners` and the Redis policy store:
params live in keyed ValueState as JSON (never pickled River objects), an in-memory cache keeps
rebuilt learners, and processing-time timers publish each key at most every ``publish_interval_ms``
once ``publish_every_n`` updates are pending. Keys idle for ``idle_expiry_ms`` are dropped.

Which timers are registered is known in memory only, never kept in state: PyFlink hands a timer
registration to the task thread as a mailbox action, so a timer registered in the bundle that a
checkpoint flushes is missing from that checkpoint while the state written in the same bundle is
in it. A restored key that trusted a timer noted in its state waited for one that never fired and
left its last updates unpublished. After a restore the memory is empty, so the next update of a key
registers its timers again (one more firing of a restored timer finds nothing to do).

Updates that Redis has not taken (it was down, read-only, full or refusing) stay counted as
pending in the key's state until it has, not only held in the publisher's memory: a job restored
from a checkpoint taken meanwhile publishes the key's params from state at the key's next timer
restored with the checkpoint, or at its next micro-batch.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from attribution.config import AGENTS
from learners.campaigns import CampaignTable
from learners.registry import KeyedLearners, LearnerSpecs, batch_from_aggregate

RETRY_MS = 1_000  # how often a key whose publish found Redis down tries again
ERROR_TEXT_CHARS = 2_000  # how much of a failed batch and of its error a dead letter carries

# A micro-batch the learner of its key could not apply, for the dead-letter topic:
# (payload: the batch as JSON, reason, src_topic, src_partition, src_offset, payload_length).
LEARNER_ERRORS = OutputTag(
    "learner-errors",
    Types.ROW_NAMED(
        ["payload", "reason", "src_topic", "src_partition", "src_offset", "payload_length"],
        [Types.STRING(), Types.STRING(), Types.STRING(), Types.INT(), Types.LONG(), Types.INT()],
    ),
)

# A reward drift a learner detected (learners.drift), for the drift topic (sql.schema.DRIFT_COLUMNS).
DRIFTS = OutputTag(
    "learner-drifts",
    Types.ROW_NAMED(
        ["campaign_id", "agent", "version", "event_time", "drifts", "detected_at_ms"],
        [Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG(), Types.LONG(), Types.LONG()],
    ),
)

# One row per publish (sql.schema.POLICY_UPDATE_COLUMNS): the key, the version, whether Redis
# took it, pending updates, the outcome (state.pending.Outcome), when, and the params: the
# policy-updates topic keeps every version for its retention, beyond Redis' capped history.
OUTPUT_TYPE = Types.ROW_NAMED(
    ["campaign_id", "agent", "version", "published", "pending", "outcome", "updated_at", "params"],
    [
        Types.STRING(),
        Types.STRING(),
        Types.LONG(),
        Types.BOOLEAN(),
        Types.LONG(),
        Types.STRING(),
        Types.LONG(),
        Types.STRING(),
    ],
)


OUTCOME_FIELD = 5  # the outcome's position in an OUTPUT_TYPE row


@dataclass(frozen=True)
class OperatorSettings:
    redis_url: str
    key_prefix: str = "adloop"
    publish_interval_ms: int = 200
    publish_every_n: int = 1
    idle_expiry_ms: int = 7 * 86_400_000
    specs: dict[str, Any] = field(default_factory=dict)
    # The campaign table (learners.campaigns.CampaignTable.to_mapping): budgets and time blocks.
    campaigns: dict[str, Any] = field(default_factory=dict)
    # RedisPolicyStore's other arguments (ACL user, TLS files); the password as a ${env:...} or
    # ${file:...} reference, resolved on the TaskManager, so no secret travels in the job graph.
    redis_options: dict[str, Any] = field(default_factory=dict)


def _dead_letter(batch: Row, exc: Exception) -> Row:
    """The dead-letter row of a micro-batch its learner rejected: the batch as JSON (cut), and the
    reason ``learner_error:<campaign>|<agent>: <error>``."""
    try:
        text = json.dumps(batch.as_dict(recursive=True), default=str, separators=(",", ":"))
    except Exception:  # noqa: BLE001 - the dead letter must not fail either
        text = repr(batch)
    reason = f"learner_error:{batch.campaign_id}|{batch.agent}: {type(exc).__name__}: {exc}"
    return Row(text[:ERROR_TEXT_CHARS], reason[:ERROR_TEXT_CHARS], "learner", None, None, len(text))


def _meta(value: list[int] | None) -> list[int]:
    """The meta state as [pending updates, last publish ms, last active ms] (state written by
    earlier versions has timer fields after these, which are ignored)."""
    if value is None:
        return [0, 0, 0]
    fields = list(value)[:3]
    return fields + [0] * (3 - len(fields))


def _version(params_json: str | None) -> int:
    """The version in a key's stored params (0 when none)."""
    return int(json.loads(params_json).get("version", 0)) if params_json else 0


class LearnerOperator(KeyedProcessFunction):
    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:  # noqa: D401
        from connect import secrets
        from state.pending import PendingPublisher
        from state.policy_store import RedisPolicyStore

        self._params = runtime_context.get_state(ValueStateDescriptor("params", Types.STRING()))
        # The key's drift detector (learners.drift.DriftGuard), JSON, for agents that have one.
        self._drift = runtime_context.get_state(ValueStateDescriptor("drift", Types.STRING()))
        # The operator's rollback or promotion the key's params descend from (its version; absent:
        # none). Checkpointed with the params, so a job restored from before an adoption adopts again.
        self._lineage = runtime_context.get_state(ValueStateDescriptor("lineage", Types.LONG()))
        self._lineages: dict[tuple[str, str], int] = {}  # the same, for close() (no keyed state there)
        self._adopted_now = False  # whether the last _publish adopted an operator's version
        # [pending updates, last publish ms, last active ms]
        self._meta = runtime_context.get_state(
            ValueStateDescriptor("meta", Types.PRIMITIVE_ARRAY(Types.LONG()))
        )
        # Registered timers by key: the next publish (or retry) timer and the expiry timer.
        self._publish_timers: dict[tuple[str, str], int] = {}
        self._expiry_timers: dict[tuple[str, str], int] = {}
        specs = LearnerSpecs(self.settings.specs)
        self._learners = KeyedLearners(specs, campaigns=CampaignTable.from_mapping(self.settings.campaigns))
        self._drift_settings = {agent: specs.drift(agent) for agent in specs.specs}
        options = dict(self.settings.redis_options)
        if options.get("password"):
            options["password"] = secrets.resolve(options["password"], "redis.password")
        options["key_prefix"] = self.settings.key_prefix
        store = RedisPolicyStore(self.settings.redis_url, **options)
        self._publisher = PendingPublisher(store)
        metrics = runtime_context.get_metrics_group().add_group("adloop")
        self._applied = {a: metrics.counter(f"rewards_applied_{a}") for a in AGENTS}
        self._published = metrics.counter("policies_published")
        self._failures = metrics.counter("publish_failures")
        # Publishes refused because an operator pinned the key, and rollbacks the learners adopted.
        self._pinned = metrics.counter("publishes_pinned")
        self._adopted = metrics.counter("rollbacks_adopted")
        self._learner_errors = metrics.counter("learner_errors")
        self._drifts = metrics.counter("learner_drifts")
        self._drift_resets = 0
        metrics.gauge("learner_drift_resets", lambda: self._drift_resets)
        # Keys whose stored params were made under another config (learners.registry.reconcile).
        metrics.gauge("learner_config_changes", lambda: self._learners.config_changes)
        self._latency_ms = 0
        metrics.gauge("publish_latency_ms", lambda: self._latency_ms)

    def close(self) -> None:
        """At the end of the input (a bounded run, a drain), publish what the keys' timers would
        have: Flink drops pending processing-time timers then, so a replay's last updates of
        every key would otherwise never reach Redis. Keys with a publish timer registered are the
        ones with updates pending; their learners in memory hold their newest params."""
        publisher = getattr(self, "_publisher", None)
        if publisher is None:
            return
        from state.codec import PolicyRecord

        now = int(time.time() * 1000)
        try:
            for campaign_id, agent in list(self._publish_timers):
                learner = self._learners.cached(campaign_id, agent)
                if learner is not None:
                    # No keyed state here (no current key): a version Redis already has stays.
                    publisher.publish(
                        PolicyRecord.from_params(campaign_id, agent, learner.to_params(), updated_at_ms=now),
                        lineage=self._lineages.get((campaign_id, agent), 0),
                    )
            publisher.flush()
        except Exception:  # noqa: BLE001 - closing must not fail; Redis keeps the last publish
            pass
        self._publish_timers.clear()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):
        campaign_id, agent = value.campaign_id, value.agent
        stored = self._params.value()
        try:
            learner = self._learners.learner(campaign_id, agent, json.loads(stored) if stored else None)
            batch = batch_from_aggregate(value.as_dict())
            learner.update(batch)
            drift = self._watch_drift(agent, learner, batch)
            params = json.dumps(learner.to_params(), separators=(",", ":"))
        except Exception as exc:  # noqa: BLE001 - one key's bad batch or config never fails the job
            # The key keeps its last good params: the learner the failed update may have changed
            # is dropped and rebuilt from them at the key's next batch.
            self._learners.forget(campaign_id, agent)
            self._learner_errors.inc()
            yield LEARNER_ERRORS, _dead_letter(value, exc)
            return
        self._params.update(params)
        if drift is not None:
            guard_state, fired = drift
            self._drift.update(guard_state)
            if fired is not None:
                self._drifts.inc()
                yield (
                    DRIFTS,
                    Row(
                        campaign_id, agent, learner.version, batch.window_end, fired, int(time.time() * 1000)
                    ),
                )
        if agent in self._applied:
            self._applied[agent].inc(int(sum(arm.trials for arm in batch.rows)))

        now = ctx.timer_service().current_processing_time()
        key = (campaign_id, agent)
        pending, last_publish, _ = _meta(self._meta.value())
        pending += 1
        if key not in self._expiry_timers:
            # One expiry timer per key, moved on when it fires early (a timer per update would
            # pile up a week of timers per key).
            self._register(ctx, self._expiry_timers, key, now + self.settings.idle_expiry_ms)
        if (
            pending >= self.settings.publish_every_n
            and now - last_publish >= self.settings.publish_interval_ms
        ):
            update = self._publish(campaign_id, agent, learner.to_params(), now)
            yield update
            if update[OUTCOME_FIELD] == "adopt" and self._adopted_now:
                # An operator's rollback replaced the params this batch was applied to: the batch
                # goes on top of the adopted ones (updates since the key's last publish, at most a
                # publish interval of them, are dropped with the params they were applied to).
                yield from self._reapply(value, campaign_id, agent, now)
            last_publish = now
            if self._held(key):
                # Redis is down: retry from a timer, not only when the next micro-batch comes. The
                # updates stay pending in state, so a restored job publishes them again.
                if key not in self._publish_timers:
                    self._register(ctx, self._publish_timers, key, now + RETRY_MS)
            else:
                pending = 0
        else:
            self._schedule_publish(ctx, key, now, last_publish)
        self._meta.update([pending, last_publish, now])

    def _reapply(self, value: Row, campaign_id: str, agent: str, now: int):
        """Apply the micro-batch ``value`` to the key's params (just adopted) and publish them."""
        try:
            learner = self._learners.learner(campaign_id, agent, json.loads(self._params.value()))
            learner.update(batch_from_aggregate(value.as_dict()))
            params = learner.to_params()
        except Exception as exc:  # noqa: BLE001 - the adopted params may be another learner's
            self._learners.forget(campaign_id, agent)
            self._learner_errors.inc()
            yield LEARNER_ERRORS, _dead_letter(value, exc)
            return
        self._params.update(json.dumps(params, separators=(",", ":")))
        yield self._publish(campaign_id, agent, params, now)

    def _watch_drift(self, agent: str, learner, batch) -> tuple[str, int | None] | None:
        """Feed the key's drift detector the batch; on drift the learner keeps the configured share
        of its evidence. Returns the detector's new state and, when it fired, the key's drift
        count (None: no detector for this agent)."""
        from learners.drift import DriftGuard

        settings = self._drift_settings.get(agent)
        if settings is None:
            return None
        stored = self._drift.value()
        try:
            guard = DriftGuard.from_state(settings, json.loads(stored) if stored else None)
        except (ValueError, KeyError, TypeError, IndexError):
            # A state this version cannot read (another format): watch the key afresh rather than
            # fail every batch of it.
            self._drift_resets += 1
            guard = DriftGuard(settings)
        fired = guard.observe(batch)
        if fired:
            learner.discount(settings.discount)
        return json.dumps(guard.to_state(), separators=(",", ":")), guard.drifts if fired else None

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        meta = self._meta.value()
        if meta is None:
            return
        pending, last_publish, last_active = _meta(meta)
        campaign_id, agent = ctx.get_current_key().split("|", 1)
        key = (campaign_id, agent)
        if self._publish_timers.get(key, timestamp) <= timestamp:
            self._publish_timers.pop(key, None)
        held = self._publisher.pending_record(campaign_id, agent)
        if held is not None:
            # Redis was down: try again; the newest params of the key are held meanwhile. Once
            # Redis has taken them, nothing is pending unless updates came after them.
            self._publisher.flush()
            if not self._held(key) and held.version >= _version(self._params.value()):
                pending = 0
        elif pending and timestamp >= last_publish + self.settings.publish_interval_ms:
            # Any timer of the key may publish: after a restore, the one that was due may be
            # missing, and updates held while Redis was down are pending in state, not in memory.
            yield self._publish(campaign_id, agent, json.loads(self._params.value()), timestamp)
            last_publish = timestamp
            if not self._held(key):
                pending = 0
        if self._held(key):
            if key not in self._publish_timers:
                self._register(ctx, self._publish_timers, key, timestamp + RETRY_MS)
        elif pending:
            self._schedule_publish(ctx, key, timestamp, last_publish)
        if self._expiry_timers.get(key, timestamp) <= timestamp:
            # The expiry timer (or, after a restore, any timer: it may be the only one left).
            self._expiry_timers.pop(key, None)
            if timestamp >= last_active + self.settings.idle_expiry_ms:
                # An inactive campaign: drop its state; Redis keeps the last published policy.
                self._params.clear()
                self._meta.clear()
                self._drift.clear()
                self._lineage.clear()
                self._learners.forget(campaign_id, agent)
                self._publish_timers.pop(key, None)
                return
            self._register(ctx, self._expiry_timers, key, last_active + self.settings.idle_expiry_ms)
        self._meta.update([pending, last_publish, last_active])

    def _schedule_publish(self, ctx, key: tuple[str, str], now_ms: int, last_publish: int) -> None:
        """A timer for the key's next publish, unless one is registered already."""
        if key not in self._publish_timers:
            due = last_publish + self.settings.publish_interval_ms
            self._register(ctx, self._publish_timers, key, max(now_ms, due))

    def _held(self, key: tuple[str, str]) -> bool:
        """Whether the publisher holds a record of the key that Redis has not taken yet."""
        return self._publisher.pending_record(*key) is not None

    @staticmethod
    def _register(ctx, timers: dict[tuple[str, str], int], key: tuple[str, str], at_ms: int) -> None:
        timers[key] = at_ms
        ctx.timer_service().register_processing_time_timer(at_ms)

    def _publish(self, campaign_id: str, agent: str, params: dict[str, Any], now_ms: int) -> Row:
        from state.codec import PolicyRecord
        from state.pending import Outcome
        from state.policy_store import PolicyStoreError

        record = PolicyRecord.from_params(campaign_id, agent, params, updated_at_ms=int(time.time() * 1000))
        started = time.perf_counter()
        lineage = self._lineage.value() or 0
        self._lineages[(campaign_id, agent)] = lineage
        outcome = self._publisher.publish(record, lineage=lineage)
        if outcome is Outcome.STALE and not self._held((campaign_id, agent)):
            # After a restore, Redis may hold a version published before the failure from rows the
            # checkpoint does not cover; the replay regroups them into other micro-batches, so its
            # versions can end up at or below that one. Move this key's version past Redis' so the
            # newest params are never ignored (and subscribers still only see versions go up).
            try:
                stored = self._publisher.store.get(campaign_id, agent)
            except (PolicyStoreError, ValueError):
                stored = None
            # Redis' record of this very version with these very params is ours (flushed after
            # Redis was down, maybe from another key's timer): nothing left to do.
            ours = stored is not None and stored.version == record.version and stored.params == record.params
            if stored is not None and stored.version >= record.version and not ours:
                params = {**params, "version": stored.version + 1}
                self._params.update(json.dumps(params, separators=(",", ":")))
                self._learners.forget(campaign_id, agent)
                record = PolicyRecord.from_params(
                    campaign_id, agent, params, updated_at_ms=record.updated_at_ms
                )
                outcome = self._publisher.publish(record, lineage=lineage)
        adopted = self._adopt(campaign_id, agent) if outcome is Outcome.ADOPT else None
        self._adopted_now = adopted is not None
        record = adopted or record
        self._latency_ms = int((time.perf_counter() - started) * 1000)
        if outcome is Outcome.WRITTEN:
            self._published.inc()
        elif outcome is Outcome.PENDING:
            self._failures.inc()
        elif outcome is Outcome.PINNED:
            self._pinned.inc()
        # STALE: Redis already has this version or a newer one (a replay after a restart).
        return Row(
            campaign_id,
            agent,
            record.version,
            outcome is Outcome.WRITTEN,
            0,
            outcome.value,
            record.updated_at_ms,
            json.dumps(record.params, separators=(",", ":")),
        )

    def _adopt(self, campaign_id: str, agent: str):
        """An operator rolled the key back or promoted a candidate: the key's params become the
        version it wrote, and the learner goes on learning from them. Returns that record, or
        None when it is not adopted now (Redis did not answer: the key's next publish tries
        again). The hold stays in Redis; the key's lineage (in keyed state) moves to it."""
        from state.policy_control import find_version
        from state.policy_store import PolicyStoreError

        store = self._publisher.store
        try:
            version = store.holds(campaign_id, agent).get("adopt")
            if version is None:
                return None
            stored = store.get(campaign_id, agent)
            record = stored if stored is not None and stored.version == version else None
            if record is None:
                record = find_version(store, campaign_id, agent, version)
        except (PolicyStoreError, ValueError):
            return None
        self._lineage.update(version)
        self._lineages[(campaign_id, agent)] = version
        if record is None:
            # The version is gone from Redis' history: the key keeps its params, and its lineage
            # moves on so that it is not refused forever.
            return None
        self._params.update(json.dumps(record.params, separators=(",", ":")))
        self._learners.forget(campaign_id, agent)
        self._adopted.inc()
        return record
