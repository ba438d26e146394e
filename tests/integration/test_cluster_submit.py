"""The feedback job submitted with `flink run -py` to PyFlink's bundled standalone cluster."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from bench.flink_cluster import StandaloneCluster
from config import app as app_config
from scripts import kafka_tools
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from tests.integration.configs import job_config


@pytest.fixture
def cluster(tmp_path):
    """A standalone cluster (one JobManager, one TaskManager) on loopback, stopped afterwards."""
    with StandaloneCluster(tmp_path / "cluster") as running:
        yield running


def test_flink_run_py_on_a_standalone_cluster(services, unique_prefix, tmp_path, cluster):
    cfg = job_config(
        services,
        unique_prefix,
        tmp_path / "rewards",
        kafka={"bounded": True},
        job={"learners": False, "name": "adloop-cluster-test"},
    )
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(services.kafka_bootstrap, topics)
    records = []
    with KafkaWriter(services.kafka_bootstrap, topic_prefix=unique_prefix) as writer:
        for chunk in Simulator(SimConfig(days=1, n_users=500, requests_per_day=2_000)).run():
            writer.write(chunk.records)
            records.extend(chunk.records)
    config_file = tmp_path / "adloop.yaml"
    config_file.write_text(yaml.safe_dump(app_config.as_sections(cfg)))

    log = tmp_path / "flink-run.log"
    code = cluster.submit(config_file, "--bounded", log=log).wait(timeout=900)
    try:
        assert code == 0, log.read_text()[-6000:]
        rewards = [
            json.loads(v) for v in kafka_tools.read_all(services.kafka_bootstrap, cfg.kafka.topic("rewards"))
        ]
        late = {
            json.loads(v)["event_id"]
            for v in kafka_tools.read_all(services.kafka_bootstrap, cfg.kafka.topic("late"))
        }
        impressions = {}
        for r in records:
            payload = json.loads(r.value) if r.malformed is None else None
            if payload and r.topic == "ad.impressions" and payload["event_id"] not in late:
                impressions[payload["impression_id"]] = payload
        expected = Counter(f"{i}:{d['agent']}" for i, p in impressions.items() for d in p["decisions"])
        assert Counter(r["decision_id"] for r in rewards if r["kind"] == "initial") == expected
    finally:
        kafka_tools.delete_topics(services.kafka_bootstrap, topics)
