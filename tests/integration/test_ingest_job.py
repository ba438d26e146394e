"""Simulator -> real Kafka -> feedback job on the mini-cluster -> Kafka: what came out is checked."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from config import app as app_config
from contract import events
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


def _impression(n: int, ts: int, **changes) -> dict:
    return {
        "schema_version": 1, "event_id": f"e{n}", "impression_id": f"i{n}", "ts": ts, "user_id": f"u{n % 7}",
        "campaign_id": "c1", "segment": "s1", "creative_id": "cr1", "bid_price": 1.0, "win_price": 0.5,
        "features": [0.5] * 8,
        "decisions": [{"agent": "creative", "action": "cr1", "propensity": 0.5, "policy_version": 1}],
        **changes,
    }  # fmt: skip


def _hostile(now: int) -> dict[str, tuple[bytes, str]]:
    """Payloads an attacker or a broken producer might send, with the reason each must get; those
    with a plausible ``ts`` carry ``now``, the start of the normal traffic they precede."""
    good = json.dumps(_impression(9_000, now))
    return {
        "1e200 price": (
            json.dumps(_impression(9_001, now, win_price=1e200)).encode(),
            "win_price_out_of_range",
        ),
        "1e400 price": (good.replace('"win_price": 0.5', '"win_price": 1e400').encode(), "non_finite_number"),
        "400 KB of 0x01": (b"\x01" * 400_000, "payload_too_large"),
        "150,000 features": (
            json.dumps(_impression(9_002, now, features=[1.0] * 150_000)).encode(),
            "payload_too_large",
        ),  # fmt: skip
        "5,000 decisions": (
            json.dumps(_impression(9_003, now, decisions=_impression(0, 0)["decisions"] * 5000)).encode(),
            "payload_too_large",
        ),
        "two creative decisions": (
            json.dumps(_impression(9_004, now, decisions=_impression(0, 0)["decisions"] * 2)).encode(),
            "duplicate_agent:decisions",
        ),
        "a | in the campaign": (
            json.dumps(_impression(9_005, now, campaign_id="c|1")).encode(),
            "bad_id:campaign_id",
        ),
        "ts given twice": ((good[:-1] + ', "ts": 1}').encode(), "duplicate_key"),
        "bad UTF-8": (b'{"schema_version": 1, "event_id": "\xff\xfe"}', "invalid_json"),
        "nesting 10,000 deep": (b"[" * 10_000 + b"]" * 10_000, "invalid_json"),
        "3 features": (
            json.dumps(_impression(9_006, now, features=[1.0] * 3)).encode(),
            "wrong_length:features",
        ),
    }


def test_far_future_and_hostile_events_are_dead_letters_and_move_neither_event_time_nor_the_job(
    services, unique_prefix
):
    """One event two hours ahead on every partition, then hostile payloads and normal traffic: the
    normal traffic is on time, every bad payload is a dead letter with its reason and a bounded
    size, and the job (no restarts allowed) ends normally."""
    from confluent_kafka import Producer

    bootstrap = services.kafka_bootstrap
    cfg = app_config.AppConfig().replace(
        kafka={"bootstrap_servers": bootstrap, "topic_prefix": unique_prefix, "bounded": True,
               "group_id": f"{unique_prefix}job"},
        job={"learners": False},
    )  # fmt: skip
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    now = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_000_000, "log_level": 0})
    future = [(topic, p) for topic in cfg.kafka.input_topics() for p in (0, 1)]
    ahead = now + 2 * 3_600_000
    far_future = {
        cfg.kafka.topic("impressions"): lambda n: _impression(8_000 + n, ahead),
        cfg.kafka.topic("clicks"): lambda n: {"schema_version": 1, "event_id": f"k{n}", "impression_id": "i1",
                                              "ts": ahead},
        cfg.kafka.topic("conversions"): lambda n: {"schema_version": 1, "event_id": f"v{n}",
                                                   "conversion_id": f"v{n}", "ts": ahead, "user_id": "u1",
                                                   "campaign_id": "c1", "value": 1.0},
        cfg.kafka.topic("auctions"): lambda n: {
            "schema_version": 1, "event_id": f"a{n}", "request_id": f"r{n}", "ts": ahead, "campaign_id": "c1",
            "segment": "s1", "time_block": 0, "bid": 0.5, "won": 0,
            "decisions": [{"agent": "bid", "action": "1", "propensity": 1.0, "policy_version": 0}],
        },
    }  # fmt: skip
    for n, (topic, partition) in enumerate(future):
        producer.produce(topic, json.dumps(far_future[topic](n)).encode(), partition=partition)
    hostile = _hostile(now - 600_000)
    for n, (payload, _) in enumerate(hostile.values()):
        producer.produce(cfg.kafka.topic("impressions"), payload, partition=n % 2)
    normal = [_impression(n, now - 600_000 + n * 1_000) for n in range(300)]
    for n, record in enumerate(normal):
        producer.produce(cfg.kafka.topic("impressions"), json.dumps(record).encode(), partition=n % 2)
    assert producer.flush(30) == 0
    try:
        feedback_job.run(cfg, flink_overrides={"restart-strategy.type": "none"})
        late = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("late"))]
        dlq = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("dlq"))]
        rewards = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("rewards"))]
    finally:
        kafka_tools.delete_topics(bootstrap, topics)

    assert late == []
    assert {row["impression_id"] for row in rewards if row["kind"] == "initial"} == {
        r["impression_id"] for r in normal
    }
    assert Counter(row["reason"] for row in dlq) == Counter(
        ["future_timestamp"] * len(future) + [reason for _, reason in hostile.values()]
    )
    for row in dlq:
        assert len(row["payload"]) <= cfg.ingest.dlq_payload_chars and row["payload_length"] >= len(
            row["payload"]
        )
    assert max(row["payload_length"] for row in dlq) >= 400_000
