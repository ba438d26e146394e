"""An inactive campaign's learner state expires: when it comes back, it learns from scratch."""

from __future__ import annotations

import json
from collections import Counter

from jobs import feedback_job
from learners.registry import KeyedLearners, LearnerSpecs, batch_from_aggregate
from scripts import kafka_tools
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from state.policy_store import RedisPolicyStore
from tests.integration.configs import job_config
from tests.integration.test_learning_job import _close

IDLE_EXPIRY_MS = 4_000
QUIET_S = 10.0  # longer than the expiry, so every key expires while nothing arrives


def test_a_key_idle_past_the_expiry_starts_again_from_fresh_params(services, unique_prefix, tmp_path):
    bootstrap = services.kafka_bootstrap
    cfg = job_config(
        services,
        unique_prefix,
        tmp_path / "rewards",
        batches={"interval_ms": 500},
        publish={"idle_expiry_ms": IDLE_EXPIRY_MS},
    )
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    chunks = [
        chunk.records for chunk in Simulator(SimConfig(days=1, n_users=500, requests_per_day=3_000)).run()
    ]
    half = len(chunks) // 2
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    batches_topic, updates_topic = cfg.kafka.topic("batches"), cfg.kafka.topic("policy_updates")
    job = feedback_job.run(cfg, wait=False)
    try:
        with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
            writer.write([r for records in chunks[:half] for r in records])
        kafka_tools.wait_until_stable(bootstrap, updates_topic, quiet_s=QUIET_S)
        before = Counter(kafka_tools.read_all(bootstrap, batches_topic))
        with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
            writer.write([r for records in chunks[half:] for r in records])
        kafka_tools.wait_until_stable(bootstrap, updates_topic, quiet_s=QUIET_S)

        # The batches the job saw after the pause, per key in order, through fresh learners.
        after = []
        for value in kafka_tools.read_all(bootstrap, batches_topic):
            if before[value]:
                before[value] -= 1
            else:
                after.append(json.loads(value))
        learners = KeyedLearners(LearnerSpecs(cfg.learners.specs))
        fresh = {}
        for row in after:
            learner = learners.learner(row["campaign_id"], row["agent"], None)
            learner.update(batch_from_aggregate(row))
            fresh[(row["campaign_id"], row["agent"])] = learner.to_params()
        assert len(fresh) >= 10, fresh.keys()
        for (campaign_id, agent), params in fresh.items():
            record = store.get(campaign_id, agent)
            assert record is not None, (campaign_id, agent)
            # Only the version differs: it continues past the one in Redis.
            _close(
                {k: v for k, v in params.items() if k != "version"},
                {k: v for k, v in record.params.items() if k != "version"},
            )
    finally:
        job.cancel().result()
        store.purge()
        store.close()
        kafka_tools.delete_topics(bootstrap, topics)
