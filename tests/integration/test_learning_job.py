"""The whole job with learners: micro-batches -> keyed learner operator -> Redis policies."""

from __future__ import annotations

import json
import math
from collections import defaultdict

from jobs import feedback_job
from learners.drift import DriftGuard
from learners.registry import KeyedLearners, LearnerSpecs, batch_from_aggregate
from scripts import kafka_tools
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from state.policy_store import RedisPolicyStore
from tests.integration.configs import job_config


def _close(a, b, path="params"):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


def replay_batches(bootstrap: str, cfg) -> dict:
    """The params of each key after the micro-batches of its batches topic, replayed key by key in
    their order through fresh learners, with the drift detection the job's operator runs (the
    same batches, so the same drifts): what the job's learners must have reached."""
    batches = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("batches"))]
    specs = LearnerSpecs(cfg.learners.specs)
    learners = KeyedLearners(specs)
    guards: dict = {}
    replayed = {}
    for row in batches:
        key = (row["campaign_id"], row["agent"])
        learner = learners.learner(*key, None)
        batch = batch_from_aggregate(row)
        learner.update(batch)
        settings = specs.drift(row["agent"])
        if settings is not None and guards.setdefault(key, DriftGuard(settings)).observe(batch):
            learner.discount(settings.discount)
        replayed[key] = learner.to_params()
    return replayed


def test_policies_in_redis_equal_a_replay_of_the_micro_batches(services, unique_prefix, tmp_path):
    bootstrap = services.kafka_bootstrap
    cfg = job_config(services, unique_prefix, tmp_path / "rewards", batches={"interval_ms": 500})
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
        for chunk in Simulator(SimConfig(days=1, n_users=500, requests_per_day=3_000)).run():
            writer.write(chunk.records)
    job = feedback_job.run(cfg, wait=False)
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    try:
        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("policy_updates"))
        updates = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("policy_updates"))]
        replayed = replay_batches(bootstrap, cfg)
        assert replayed
        for (campaign_id, agent), params in replayed.items():
            record = store.get(campaign_id, agent)
            assert record is not None, (campaign_id, agent)
            assert record.version == params["version"]
            _close(params, record.params)
        # Each key's published versions only go up.
        seen: dict = defaultdict(list)
        for u in updates:
            seen[(u["campaign_id"], u["agent"])].append(u["version"])
        assert all(v == sorted(set(v)) for v in seen.values())
    finally:
        job.cancel().result()
        store.purge()
        store.close()
        kafka_tools.delete_topics(bootstrap, topics)


def test_a_failing_learner_sends_its_batches_to_the_dead_letters_and_the_job_keeps_learning(
    services, unique_prefix, tmp_path
):
    """The bid agent misconfigured (a pacing learner fed bid batches): each of its micro-batches is a
    dead letter naming the key and the error, while the creative agent keeps learning and the job
    keeps running, with no restart allowed."""
    bootstrap = services.kafka_bootstrap
    cfg = job_config(
        services,
        unique_prefix,
        tmp_path / "rewards",
        batches={"interval_ms": 500},
        learners={
            "creative": {"learner": "ThompsonSampling"},
            # A pacer over bid multipliers: a multiplier above 1 is no pacing rate, so it fails.
            "bid": {"learner": "BudgetPacer"},
        },
    )
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
        for chunk in Simulator(SimConfig(days=1, n_users=500, requests_per_day=2_000)).run():
            writer.write(chunk.records)
    job = feedback_job.run(cfg, wait=False, flink_overrides={"restart-strategy.type": "none"})
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    try:
        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("policy_updates"))
        assert job.get_job_status().result().name == "RUNNING"
        dead = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("dlq"))]
        failed = [row for row in dead if row["reason"].startswith("learner_error:")]
        assert failed and all("|bid: " in row["reason"] for row in failed)
        assert all(
            row["src_topic"] == "learner" and '"agent":"bid"' in row["payload"] and row["payload_length"] > 0
            for row in failed
        )
        records = store.load_all()
        assert {r.agent for r in records} == {"creative"}  # bid kept no params; creative learned on
    finally:
        job.cancel().result()
        store.purge()
        store.close()
        kafka_tools.delete_topics(bootstrap, topics)
