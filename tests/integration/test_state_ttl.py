"""Regression: the dedup TTL (``table.exec.state.ttl``, processing time) expired the attribution
functions' state too, so a conversion more than ``ingest.dedup_ttl_ms`` of wall time after its
touches got no credit: in production, none for touches older than 2 days of a 30-day lookback.

The job reads the first simulated day, waits past a 2-second dedup TTL, then reads the second:
every reward row, the credit of day-2 conversions for day-1 touches among them, must equal the
reference attribution's.
"""

from __future__ import annotations

import time

from jobs import feedback_job
from scripts import kafka_tools
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from tests.integration.configs import job_config, rewards_and_late, settled_rows
from tests.reference.attribution import compare_rows

DEDUP_TTL_MS = 2_000


def test_conversion_credit_reaches_touches_older_than_the_dedup_ttl(services, unique_prefix, tmp_path):
    cfg = job_config(
        services,
        unique_prefix,
        tmp_path / "rewards",
        kafka={"bounded": False},
        ingest={"out_of_orderness_ms": 30_000, "dedup_ttl_ms": DEDUP_TTL_MS},
        job={"learners": False},
    )
    bootstrap = services.kafka_bootstrap
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    # No duplicates: with a 2 s TTL, dedup itself would forget the first day's event ids.
    sim_cfg = SimConfig(
        days=2,
        n_users=300,
        requests_per_day=4_000,
        view_conversion_ratio=0.2,
        duplicate_rate=0.0,
        late_rate=0.0,
    )
    chunks = list(Simulator(sim_cfg).run())
    first_day, second_day = chunks[:24], chunks[24:]
    records = [r for chunk in chunks for r in chunk.records]
    day_two_ms = first_day[-1].end_ms
    job = feedback_job.run(cfg, wait=False)
    try:
        with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
            for chunk in first_day:
                writer.write(chunk.records)
        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("rewards"), timeout_s=300)
        time.sleep(3 * DEDUP_TTL_MS / 1000)  # every day-1 state entry is past the TTL now
        with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
            for chunk in second_day:
                writer.write(chunk.records)
        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("rewards"), timeout_s=300)
        rows, late = rewards_and_late(bootstrap, cfg)
    finally:
        job.cancel().result()
        kafka_tools.delete_topics(bootstrap, topics)

    expected, actual = settled_rows(records, rows, late, cfg)
    across = [
        row
        for row in expected
        if row["kind"] == "delayed" and row["event_ts"] < day_two_ms <= row["reward_ts"]
    ]
    assert len(across) > 20, len(across)  # day-2 conversions crediting day-1 touches
    problems = compare_rows(expected, actual, rel=1e-9)
    assert not problems, "\n".join(problems[:20])
