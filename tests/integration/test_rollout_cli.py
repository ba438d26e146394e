"""Every command of the operator's CLI (``python -m rollout``) against a live job with learners:
versions, show (from Redis and from the policy-updates topic), rollback (the learners adopt the
old params), pin (publication stops, through a restart of the job from its checkpoint and of a
serving client), unpin."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from bench import replay_trials
from config import app as app_config
from jobs import feedback_job
from rollout.__main__ import main as cli
from scripts import kafka_tools
from scripts.pyflink_env import script_environ
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from sql import client_init
from state.policy_store import RedisPolicyStore
from state.serving_client import ServingClient
from tests.integration.configs import job_config
from tests.integration.test_restart_and_outage import _completed_checkpoints, _latest_checkpoint_number

ROOT = Path(__file__).resolve().parents[2]
SIM = SimConfig(days=1, n_users=300, requests_per_day=2_500, late_rate=0.0, n_campaigns=1)
WAIT_S = 600.0
AGENT = "creative"


def wait_for(condition, timeout_s: float, what: str, detail=None):
    """``replay_trials.wait_for``; on a timeout the message adds ``detail()``."""
    try:
        return replay_trials.wait_for(condition, timeout_s, what)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; {detail() if detail else ''}") from None


def _parts(n: int) -> list[list]:
    """The simulator's records in ``n`` parts of consecutive simulated hours."""
    chunks = [chunk.records for chunk in Simulator(SIM).run()]
    cuts = [round(i * len(chunks) / n) for i in range(n + 1)]
    return [[r for c in chunks[cuts[i] : cuts[i + 1]] for r in c] for i in range(n)]


def _trials(params: dict) -> float:
    return sum(stats[0] for stats in params["stats"])


def _updates(bootstrap: str, cfg: app_config.AppConfig) -> list[dict]:
    return [
        u
        for u in map(json.loads, kafka_tools.read_all(bootstrap, cfg.kafka.topic("policy_updates")))
        if u["agent"] == AGENT
    ]


def _batch_trials(bootstrap: str, cfg: app_config.AppConfig, campaign: str) -> float:
    return sum(
        arm["trials"]
        for b in map(json.loads, kafka_tools.read_all(bootstrap, cfg.kafka.topic("batches")))
        if (b["campaign_id"], b["agent"]) == (campaign, AGENT)
        for arm in b["arms"]
    )


def test_every_cli_command_on_a_live_job(services, unique_prefix, tmp_path: Path, capsys):
    bootstrap = services.kafka_bootstrap
    # Plain Thompson sampling, no drift discount: a learner's trials are the sum of its batches'.
    cfg = job_config(
        services,
        unique_prefix,
        tmp_path / "rewards",
        batches={"interval_ms": 300},
        learners={AGENT: {"learner": "ThompsonSampling"}},
    )
    config_file = tmp_path / "adloop.yaml"
    config_file.write_text(yaml.safe_dump(app_config.as_sections(cfg)))
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    checkpoints = tmp_path / "checkpoints"
    overrides = {
        "execution.checkpointing.interval": "2 s",
        "execution.checkpointing.dir": checkpoints.as_uri(),
    }
    parts = _parts(6)
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    campaign = next(
        json.loads(r.value)["campaign_id"]
        for r in parts[0]
        if r.topic.endswith("impressions") and r.malformed is None
    )

    def run(*args: str) -> str:
        capsys.readouterr()
        assert cli(["--config", str(config_file), *args]) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    def write(records: list) -> None:
        with KafkaWriter(bootstrap, topic_prefix=cfg.kafka.topic_prefix) as writer:
            writer.write(records)

    def version() -> int:
        record = store.get(campaign, AGENT)
        return record.version if record else 0

    def new_rows(after: int) -> list[dict]:
        return _updates(bootstrap, cfg)[after:]

    jobs = []
    client = None
    try:
        write(parts[0])
        jobs.append(feedback_job.run(cfg, wait=False, flink_overrides=overrides))
        wait_for(lambda: version() >= 1, WAIT_S, "a creative policy")
        first = version()
        write(parts[1])  # a part arrives in a burst, in a micro-batch or two: another for a second version
        wait_for(lambda: version() > first, WAIT_S, "a second version of the creative policy")
        wait_for(lambda: _latest_checkpoint_number(checkpoints, jobs[0]) >= 1, WAIT_S, "a checkpoint")

        # versions and show
        listing = run("versions", campaign, AGENT, "--limit", "50")
        assert f"{campaign}/{AGENT}: no holds" in listing
        history = store.history(campaign, AGENT)
        assert f"{history[0].version:>9}" in listing and "learned" in listing
        shown = json.loads(run("show", campaign, AGENT))
        assert shown["version"] >= history[0].version and shown["learner"] == "ThompsonSampling"
        early = history[-1]  # the oldest version kept
        assert (
            json.loads(run("show", campaign, AGENT, "--version", str(early.version)))["params"]
            == early.params
        )

        # rollback: the learners adopt the early params and go on learning from them
        latest = store.get(campaign, AGENT)
        out = run("rollback", campaign, AGENT, "--to", str(early.version))
        rolled = store.get(campaign, AGENT)
        assert rolled.rolled_back_from is not None and rolled.republished_from == early.version, out
        assert rolled.version > latest.version and _trials(rolled.params) == _trials(early.params)
        seen = len(_updates(bootstrap, cfg))
        write(parts[2])
        wait_for(
            lambda: any(u["outcome"] == "written" and u["version"] > rolled.version for u in new_rows(seen)),
            WAIT_S,
            "a publish after the rollback",
            lambda: [(u["version"], u["outcome"]) for u in new_rows(0)],
        )
        assert any(u["outcome"] == "adopt" for u in new_rows(seen)), new_rows(seen)
        assert store.holds(campaign, AGENT) == {"adopt": rolled.version}  # kept: the learners' floor

        # pin: publication stops; the learners keep learning (their refused params are on the topic)
        pinned = json.loads(run("show", campaign, AGENT))
        out = run("pin", campaign, AGENT)
        pin_version = version()
        assert store.holds(campaign, AGENT) == {"adopt": rolled.version, "pinned": pin_version}, out
        seen = len(_updates(bootstrap, cfg))
        write(parts[3])
        wait_for(
            lambda: any(u["outcome"] == "pinned" for u in new_rows(seen)),
            WAIT_S,
            "a publish refused by the pin",
        )
        assert version() == pin_version

        # ... through a restart of the job from its latest checkpoint
        wait_for(lambda: _latest_checkpoint_number(checkpoints, jobs[0]) >= 3, WAIT_S, "more checkpoints")
        jobs[0].cancel().result()
        latest_checkpoint = _completed_checkpoints(checkpoints, jobs[0])[-1]
        seen = len(_updates(bootstrap, cfg))
        write(parts[4])
        restored = {**overrides, "execution.state-recovery.path": latest_checkpoint.as_uri()}
        jobs.append(feedback_job.run(cfg, wait=False, flink_overrides=restored))
        wait_for(
            lambda: any(u["outcome"] == "pinned" for u in new_rows(seen)),
            WAIT_S,
            "the restored job's publish refused by the pin",
        )
        assert version() == pin_version
        # ... and of a serving client: it serves the pinned params
        client = ServingClient(store, seed=0)
        assert client.start(wait_s=10)
        served = client.record(campaign, AGENT)
        assert served.version == pin_version
        assert {**served.params, "version": 0} == {**pinned["params"], "version": 0}

        # unpin: the learners' newest params are published again, above the pinned version
        run("unpin", campaign, AGENT)
        assert store.holds(campaign, AGENT) == {"adopt": rolled.version}
        write(parts[5])
        wait_for(lambda: version() > pin_version, WAIT_S, "a publish after the unpin")
        assert client.wait_for_version(campaign, AGENT, version(), timeout_s=30)
        versions_seen = client.versions_seen(campaign, AGENT)
        assert list(versions_seen) == sorted(set(versions_seen)), versions_seen

        # The learner adopted the early params: it lacks the evidence between them and the rollback.
        wait_for(lambda: _latest_checkpoint_number(checkpoints, jobs[1]) >= 1, WAIT_S, "a checkpoint")
        kafka_tools.wait_until_stable(
            bootstrap, cfg.kafka.topic("policy_updates"), timeout_s=WAIT_S, quiet_s=10
        )
        final = store.get(campaign, AGENT)
        dropped = _trials(latest.params) - _trials(early.params)
        assert dropped > 0
        assert _trials(final.params) <= _batch_trials(bootstrap, cfg, campaign) - dropped + 1e-6

        listing = run("versions", campaign, AGENT, "--limit", "1000")
        assert f"rollback of v{rolled.rolled_back_from} to v{early.version}" in listing
        assert f"republish of v{pinned['version']}" in listing

        # show falls back to the policy-updates topic for a version Redis no longer keeps
        store.redis.delete(store.keys.history(campaign, AGENT))
        from_topic = json.loads(run("show", campaign, AGENT, "--version", str(latest.version)))
        assert from_topic["params"] == latest.params
        assert cli(["--config", str(config_file), "show", campaign, AGENT, "--version", "999999"]) == 2
        assert "no version 999999" in capsys.readouterr().err

        # candidate, share, end: a rollout beside the live control, followed by the serving client
        out = run("candidate", campaign, AGENT, "--version", str(early.version), "--share", "0.2", "--shadow")
        rollout = store.get_rollout(campaign, AGENT)
        assert rollout is not None and (rollout.share, rollout.shadow) == (0.2, True), out
        assert (
            rollout.candidate.republished_from == early.version and rollout.candidate.version > final.version
        )
        wait_for(lambda: client.rollout(campaign, AGENT) == rollout, 30, "the client to follow the rollout")
        arms = sorted(early.params["arms"])
        served = [client.choose(campaign, AGENT, {}, arms, request_id=f"q{i}") for i in range(2_000)]
        assert {c.rollout for c in served} == {"control", "candidate"}
        assert {c.policy_version for c in served if c.rollout == "candidate"} == {rollout.candidate.version}
        assert all(c.shadow_action is not None for c in served if c.rollout == "control")
        assert "serving 20%, shadow on" in run("versions", campaign, AGENT)
        run("share", campaign, AGENT, "0.5")
        assert store.get_rollout(campaign, AGENT).share == 0.5
        with pytest.raises(SystemExit) as refused:  # argparse: a one-line usage error, status 2
            cli(["--config", str(config_file), "share", campaign, AGENT, "1.5"])
        assert refused.value.code == 2
        params_file = tmp_path / "candidate.json"
        params_file.write_text(json.dumps(latest.params))
        run("candidate", campaign, AGENT, "--params", str(params_file), "--share", "0")
        assert store.get_rollout(campaign, AGENT).candidate.params["stats"] == latest.params["stats"]
        assert "ended" in run("end", campaign, AGENT)
        assert store.get_rollout(campaign, AGENT) is None
        wait_for(lambda: client.rollout(campaign, AGENT) is None, 30, "the client to drop the rollout")

        # the SQL client lists the versions the job published, from the policy-updates topic
        init = tmp_path / "init.sql"
        init.write_text(client_init.render(cfg))
        query = ROOT / "sql" / "queries" / "policy_versions.sql"
        command = [str(ROOT / "scripts" / "sql_client.sh"), "-i", str(init), "-f", str(query)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=script_environ())
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in proc.stdout.splitlines()]
        listed = {int(r[2]) for r in rows if len(r) > 2 and (r[0], r[1]) == (campaign, AGENT)}
        written = {u["version"] for u in _updates(bootstrap, cfg) if u["outcome"] in ("written", "adopt")}
        assert listed == written, (sorted(listed), sorted(written))
    finally:
        if client is not None:
            client.stop()
        for job in jobs:
            try:
                job.cancel().result()
            except Exception:  # noqa: BLE001 - already finished or cancelled
                pass
        store.purge()
        store.close()
        kafka_tools.delete_topics(bootstrap, topics)
