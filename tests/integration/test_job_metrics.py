"""The job's ``adloop`` metrics, read from the mini-cluster's REST API, against its outputs."""

from __future__ import annotations

import json
import time
from collections import Counter

from attribution.config import AGENTS
from jobs import feedback_job
from jobs.metrics import job_metrics
from scripts import kafka_tools
from scripts.services import free_port
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from state.policy_store import RedisPolicyStore
from tests.integration.configs import job_config


def test_metrics_count_dead_letters_late_rows_applied_rewards_and_publishes(
    services, unique_prefix, tmp_path
):
    bootstrap = services.kafka_bootstrap
    cfg = job_config(services, unique_prefix, tmp_path / "rewards", batches={"interval_ms": 500})
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    # Late events arrive 6 simulated hours late: far behind the watermark whatever the replay's pace.
    sim = SimConfig(
        days=2,
        n_users=500,
        requests_per_day=3_000,
        malformed_rate=0.01,
        late_rate=0.01,
        late_by_ms=6 * 3_600_000,
    )
    with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
        for chunk in Simulator(sim).run():
            writer.write(chunk.records)
    port = free_port()
    job = feedback_job.run(
        cfg,
        wait=False,
        flink_overrides={"rest.bind-port": str(port), "metrics.fetcher.update-interval": "500"},
    )
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    try:
        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("policy_updates"))
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
            **{f"rewards_applied_{agent}": applied[agent] for agent in AGENTS},
        }
        assert expected["dlq_records"] > 0 and expected["late_records"] > 0
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
