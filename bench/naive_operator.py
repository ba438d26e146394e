"""The naive design, as a baseline for bench/bench_feedback.py only: one Python call per reward row,
a River ThompsonSampling policy pickled whole in keyed state, unpickled and re-pickled each time.

The feedback job does the opposite (SQL aggregates per key and micro-batch, compact params in
state); this operator is what it is measured against. Publishing is the same as the job's: to the
same Redis store, at most every ``publish_interval_ms`` per key.
"""

from __future__ import annotations

import pickle
import time

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

# (campaign_id, agent, version, published, pending): the shape of the job's policy updates.
OUTPUT_TYPE = Types.ROW_NAMED(
    ["campaign_id", "agent", "version", "published", "pending"],
    [Types.STRING(), Types.STRING(), Types.LONG(), Types.BOOLEAN(), Types.LONG()],
)


class NaiveRiverOperator(KeyedProcessFunction):
    """Key: ``campaign|agent``; input: reward rows (initial ones count as pulls of their action)."""

    def __init__(self, redis_url: str, key_prefix: str, publish_interval_ms: int = 200) -> None:
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.publish_interval_ms = publish_interval_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        from state.pending import PendingPublisher
        from state.policy_store import RedisPolicyStore

        self._policy = runtime_context.get_state(ValueStateDescriptor("policy", Types.PICKLED_BYTE_ARRAY()))
        self._last_publish: dict[str, float] = {}
        self._versions: dict[str, int] = {}
        self._publisher = PendingPublisher(RedisPolicyStore(self.redis_url, key_prefix=self.key_prefix))

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):
        from river import bandit, proba

        stored = self._policy.value()
        policy = (
            pickle.loads(stored)
            if stored is not None
            else bandit.ThompsonSampling(reward_obj=proba.Gaussian(), seed=0)
        )
        policy.update(value.action, float(value.reward))
        self._policy.update(pickle.dumps(policy))

        key = f"{value.campaign_id}|{value.agent}"
        version = self._versions.get(key, 0) + 1
        self._versions[key] = version
        now = time.time() * 1000
        if now - self._last_publish.get(key, 0.0) >= self.publish_interval_ms:
            self._last_publish[key] = now
            yield self._publish(value.campaign_id, value.agent, policy, version, now)

    def _publish(self, campaign_id: str, agent: str, policy, version: int, now_ms: float) -> Row:
        from state.codec import PolicyRecord
        from state.pending import Outcome

        means = {arm: float(dist.mu) for arm, dist in policy._rewards.items()}
        params = {"learner": "RiverThompsonSampling", "version": version, "means": means}
        record = PolicyRecord.from_params(campaign_id, agent, params, updated_at_ms=int(now_ms))
        outcome = self._publisher.publish(record)
        return Row(campaign_id, agent, version, outcome is Outcome.WRITTEN, 0)
