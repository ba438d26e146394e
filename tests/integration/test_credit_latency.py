"""Conversion credit comes out while the job runs, not a lookback (30 days of event time) later.

The job reads two simulated days from real Kafka, unbounded, on the mini-cluster. Once it has
caught up, every delayed row of a conversion the watermark has passed (all but the last hours)
must already be on the rewards topic, equal to the reference attribution.
"""

from __future__ import annotations

from jobs import feedback_job
from scripts import kafka_tools
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from tests.integration.configs import job_config, rewards_and_late, settled_rows
from tests.reference.attribution import compare_rows


def test_delayed_rewards_come_out_while_the_job_runs(services, unique_prefix, tmp_path):
    cfg = job_config(
        services,
        unique_prefix,
        tmp_path / "rewards",
        kafka={"bounded": False},
        ingest={"out_of_orderness_ms": 30_000},
        job={"learners": False},
    )
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(services.kafka_bootstrap, topics)
    sim_cfg = SimConfig(days=2, n_users=400, requests_per_day=4_000, view_conversion_ratio=0.2)
    records = []
    with KafkaWriter(services.kafka_bootstrap, topic_prefix=unique_prefix) as writer:
        for chunk in Simulator(sim_cfg).run():
            writer.write(chunk.records)
            records.extend(chunk.records)
    job = feedback_job.run(cfg, wait=False)
    bootstrap = services.kafka_bootstrap
    try:
        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("rewards"), timeout_s=300)
        rows, late = rewards_and_late(bootstrap, cfg)
    finally:
        job.cancel().result()
        kafka_tools.delete_topics(bootstrap, topics)

    # The watermark waits for every partition of every input topic (idle-timeout 0 ms in
    # flink-conf/config.yaml): the clicks topic, ~100 clicks a day over 2 partitions, can go a few
    # hours without a click in one of them at the end of the run (this market's last clicks: 0.7,
    # 1.8, 1.9, 2.2 and 2.6 hours before its end). Six hours behind the newest event, every
    # partition has moved on.
    expected, actual = settled_rows(records, rows, late, cfg, kinds=("delayed",), settled_ms=6 * 3_600_000)
    assert len(expected) > 100, len(expected)  # most conversions are settled
    problems = compare_rows(expected, actual, rel=1e-9)
    assert not problems, "\n".join(problems[:20])
