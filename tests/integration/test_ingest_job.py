"""Simulator -> real Kafka -> feedback job on the mini-cluster -> Kafka: what came out is checked."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from contract import events
from jobs import config as app_config
from jobs import feedback_job
from scripts import kafka_tools
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter

# Reason code the SQL must give for each kind of malformed record the simulator makes.
EXPECTED_REASON = {
    "invalid_json": "invalid_json",
    "missing_field": "missing_field:",
    "wrong_type": "wrong_type:",
    "unknown_schema_version": "unknown_schema_version",
    "negative_money": "negative_value:",
    "nan_money": "non_finite_number",
    "bad_propensity": "propensity_out_of_range",
    "future_ts": "future_timestamp",
}


@pytest.fixture
def produced(services, unique_prefix):
    """One simulated day with every kind of noise, written to fresh topics."""
    cfg = SimConfig(days=1, n_users=2_000, requests_per_day=4_000, malformed_rate=0.02, duplicate_rate=0.02)
    topics = [
        unique_prefix + t for t in (*events.TOPICS, "ad.rewards", "ad.learner.batches", "ad.late", "ad.dlq")
    ]
    kafka_tools.create_topics(services.kafka_bootstrap, topics)
    sim = Simulator(cfg)
    records = []
    with KafkaWriter(services.kafka_bootstrap, topic_prefix=unique_prefix) as writer:
        for chunk in sim.run():
            writer.write(chunk.records)
            records.extend(chunk.records)
    yield records
    kafka_tools.delete_topics(services.kafka_bootstrap, topics)


def test_job_turns_valid_events_into_rewards_and_bad_ones_into_dead_letters(
    services, unique_prefix, produced
):
    cfg = app_config.AppConfig().replace(
        kafka={
            "bootstrap_servers": services.kafka_bootstrap,
            "topic_prefix": unique_prefix,
            "bounded": True,
            "group_id": f"{unique_prefix}job",
        },
        job={"learners": False},
    )
    # No restarts allowed: a bad record that failed the job would fail this test, not be retried.
    feedback_job.run(cfg, flink_overrides={"restart-strategy.type": "none"})

    rewards = [
        json.loads(v) for v in kafka_tools.read_all(services.kafka_bootstrap, cfg.kafka.topic("rewards"))
    ]
    late = [json.loads(v) for v in kafka_tools.read_all(services.kafka_bootstrap, cfg.kafka.topic("late"))]
    dlq = [json.loads(v) for v in kafka_tools.read_all(services.kafka_bootstrap, cfg.kafka.topic("dlq"))]

    valid = [r for r in produced if r.malformed is None]
    malformed = [r for r in produced if r.malformed is not None]
    assert len(malformed) > 0 and {r.malformed for r in malformed} == set(EXPECTED_REASON)

    # Every valid impression is either late or, once, an initial reward per decision it carries.
    late_ids = {row["event_id"] for row in late}
    impressions = {}
    for r in valid:
        payload = json.loads(r.value)
        if r.topic == events.IMPRESSIONS and payload["event_id"] not in late_ids:
            impressions[payload["impression_id"]] = payload
    initial = Counter(row["decision_id"] for row in rewards if row["kind"] == "initial")
    expected = Counter(f"{i}:{d['agent']}" for i, p in impressions.items() for d in p["decisions"])
    assert initial == expected

    # Every malformed record is a dead letter with the reason of its kind and its coordinates.
    assert len(dlq) == len(malformed)
    by_payload = {row["payload"]: row for row in dlq}
    for record in malformed:
        row = by_payload[record.value.decode()]
        assert row["reason"].startswith(EXPECTED_REASON[record.malformed]), (record.malformed, row["reason"])
        assert row["src_topic"] == unique_prefix + record.topic
        assert row["src_offset"] >= 0
