"""The feedback job submitted with `flink run -py` to PyFlink's bundled standalone cluster."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyflink
import pytest
import yaml

from jobs import config as app_config
from scripts import kafka_tools
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from tests.integration.configs import job_config
from tests.pyflink_env import script_environ

ROOT = Path(__file__).resolve().parents[2]
FLINK_HOME = Path(pyflink.__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """A standalone cluster (one JobManager, one TaskManager) on loopback, stopped afterwards."""
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    conf = yaml.safe_load((ROOT / "flink-conf" / "config.yaml").read_text())
    rest_port = _free_port()
    conf["rest"]["port"] = rest_port
    conf["jobmanager"]["rpc"]["port"] = _free_port()
    conf["execution"]["checkpointing"]["dir"] = (tmp_path / "checkpoints").as_uri()
    conf["state"]["changelog"]["dstl"]["dfs"]["base-path"] = (tmp_path / "changelog").as_uri()
    (conf_dir / "config.yaml").write_text(yaml.safe_dump(conf))
    for name in ("log4j.properties", "log4j-cli.properties", "log4j-console.properties"):
        shutil.copy(FLINK_HOME / "conf" / name, conf_dir / name)
    (conf_dir / "workers").write_text("localhost\n")
    (conf_dir / "masters").write_text(f"localhost:{rest_port}\n")
    env = script_environ(
        FLINK_CONF_DIR=str(conf_dir), FLINK_LOG_DIR=str(tmp_path / "log"), FLINK_PID_DIR=str(tmp_path / "pid")
    )
    (tmp_path / "log").mkdir()
    (tmp_path / "pid").mkdir()
    subprocess.run([str(FLINK_HOME / "bin" / "jobmanager.sh"), "start"], env=env, check=True, timeout=60)
    subprocess.run([str(FLINK_HOME / "bin" / "taskmanager.sh"), "start"], env=env, check=True, timeout=60)
    try:
        yield env, rest_port
    finally:
        subprocess.run([str(FLINK_HOME / "bin" / "taskmanager.sh"), "stop-all"], env=env, timeout=60)
        subprocess.run([str(FLINK_HOME / "bin" / "jobmanager.sh"), "stop-all"], env=env, timeout=60)


def test_flink_run_py_on_a_standalone_cluster(services, unique_prefix, tmp_path, cluster):
    env, rest_port = cluster
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

    proc = subprocess.run(
        [
            str(FLINK_HOME / "bin" / "flink"),
            "run",
            "-m",
            f"localhost:{rest_port}",
            "-py",
            str(ROOT / "jobs" / "feedback_job.py"),
            "-pyexec",
            sys.executable,
            "-pyclientexec",
            sys.executable,
            "--config",
            str(config_file),
            "--bounded",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
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
