"""The job's ``adloop`` metrics, read from the mini-cluster's REST API, against its outputs."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter

from attribution.config import AGENTS
from contract.events import IMPRESSIONS
from jobs import feedback_job
from jobs.metrics import job_metrics
from scripts import kafka_tools
from scripts.services import free_port
from sim.config import SimConfig
from sim.noise import SimRecord
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from state.policy_store import RedisPolicyStore
from tests.integration.configs import job_config


def _renamed(record: SimRecord, suffix: str) -> SimRecord:
    """The same impression under a new event id and impression id."""
    event = json.loads(record.value)
    event["event_id"] += suffix
    event["impression_id"] += suffix
    return dataclasses.replace(record, value=json.dumps(event).encode())


def test_metrics_count_dead_letters_late_rows_applied_rewards_and_publishes(
    services, unique_prefix, tmp_path
):
    bootstrap = services.kafka_bootstrap
    cfg = job_config(services, unique_prefix, tmp_path / "rewards", batches={"interval_ms": 500})
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    sim = SimConfig(days=2, n_users=500, requests_per_day=3_000, malformed_rate=0.01)
    records = [r for chunk in Simulator(sim).run() for r in chunk.records]
    with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
        writer.write(records)
    # Copies of the first impressions under new ids, sent once the job has caught up: two
    # simulated days behind the watermark, so late whatever the replay's pace.
    stragglers = [_renamed(r, "-again") for r in records if r.topic == IMPRESSIONS and r.malformed is None][
        :10
    ]
    port = free_port()
    job = feedback_job.run(
        cfg,
        wait=False,
        flink_overrides={"rest.bind-port": str(port), "metrics.fetcher.update-interval": "500"},
    )
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    try:
        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("policy_updates"))
        with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
            writer.write(stragglers)
        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("late"))
        dlq = kafka_tools.read_all(bootstrap, cfg.kafka.topic("dlq"))
        late = kafka_tools.read_all(bootstrap, cfg.kafka.topic("late"))
        batches = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("batches"))]
        updates = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("policy_updates"))]
        applied: Counter = Counter()  # every agent has a counter, 0 for one that made no decisions
        for row in batches:
            applied[row["agent"]] += sum(int(arm["trials"]) for arm in row["arms"])
        expected = {
            "dlq_records": len(dlq),
            "late_records": len(late),
            "policies_published": sum(u["published"] for u in updates),
            "publish_failures": 0,
            "learner_drifts": len(kafka_tools.read_all(bootstrap, cfg.kafka.topic("drift"))),
            **{f"rewards_applied_{agent}": applied[agent] for agent in AGENTS},
        }
        assert expected["dlq_records"] > 0 and expected["late_records"] >= len(stragglers)
        assert expected["policies_published"] > 0 and applied["creative"] > 0 and applied["bid"] > 0

        # The REST API serves values refreshed every 0.5 s: wait for them to catch up.
        deadline = time.monotonic() + 60
        while True:
            metrics = job_metrics(f"http://127.0.0.1:{port}", str(job.get_job_id()))
            # A counter appears with its first count: a missing one is 0 (jobs/metrics.py).
            seen = {name: metrics.get(name, 0) for name in expected}
            if seen == expected or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert seen == expected
        assert metrics["publish_latency_ms"] >= 0
    finally:
        job.cancel().result()
        store.purge()
        store.close()
        kafka_tools.delete_topics(bootstrap, topics)
