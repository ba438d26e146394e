"""The job with learners survives a restart from its latest checkpoint, a 30 s Redis outage, and a
full, read-only, refusing or silent Redis."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import pytest
import redis
from pyflink.common import JobStatus

from bench.replay_trials import wait_for
from config import app as app_config
from jobs import feedback_job
from scripts import kafka_tools
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from state.policy_store import RedisPolicyStore
from state.serving_client import ServingClient
from tests.integration.configs import job_config
from tests.integration.secured import RedisServer, free_port
from tests.integration.test_learning_job import _close, replay_batches

# No injected late events: lateness through a restore has its own test
# (test_reproducible_replay.py).
SIM = SimConfig(days=1, n_users=500, requests_per_day=3_000, late_rate=0.0)
CHECKPOINT_INTERVAL = "2 s"
OUTAGE_S = 30.0
REL_TOL = 1e-9
# Deadlines, not timings: generous enough for a shared 2-core machine (a 240 s one expired once).
WAIT_S = 600.0


def _thirds() -> list[list]:
    """The simulator's records in three parts of consecutive simulated hours."""
    chunks = [chunk.records for chunk in Simulator(SIM).run()]
    cut = len(chunks) // 3
    parts = chunks[:cut], chunks[cut : 2 * cut], chunks[2 * cut :]
    return [[r for records in part for r in records] for part in parts]


def _run(cfg: app_config.AppConfig, overrides: dict[str, str] | None = None):
    return feedback_job.run(cfg, wait=False, flink_overrides=overrides)


def _write(bootstrap: str, prefix: str, records: list) -> None:
    with KafkaWriter(bootstrap, topic_prefix=prefix) as writer:
        writer.write(records)


def _checkpoint_number(checkpoint: Path) -> int:
    """``n`` of a ``chk-<n>`` directory."""
    return int(checkpoint.name.split("-")[1])


def _completed_checkpoints(checkpoint_dir: Path, job) -> list[Path]:
    """Completed checkpoints of ``job`` (those with ``_metadata``), oldest first."""
    job_dir = checkpoint_dir / str(job.get_job_id())
    done = [p for p in job_dir.glob("chk-*") if (p / "_metadata").exists()]
    return sorted(done, key=_checkpoint_number)


def _latest_checkpoint_number(checkpoint_dir: Path, job) -> int:
    """The number of ``job``'s latest completed checkpoint, 0 for none."""
    done = _completed_checkpoints(checkpoint_dir, job)
    return _checkpoint_number(done[-1]) if done else 0


def _arm_stats(params: dict) -> dict:
    """A learner's sufficient statistics by arm: a bandit's per arm, a bandit per segment's per
    (segment, arm) and its pooled one's, the bid agent's per (segment, arm), the pacer's per
    (block, arm)."""
    if "pooled" in params:
        inner = {"": params["pooled"], **params["segments"]}
        return {(s, a): v for s, p in inner.items() for a, v in zip(p["arms"], p["stats"], strict=True)}
    if "stats" in params:
        return dict(zip(params["arms"], params["stats"], strict=True))
    rows = params["segments"] if "segments" in params else params["blocks"]
    return dict(zip([(r, a) for r in rows for a in params["arms"]], params["cells"], strict=True))


def _records(store: RedisPolicyStore) -> dict:
    return {record.key: record for record in store.load_all()}


def _reward_rows_diff(bootstrap: str, cfg: app_config.AppConfig, ref_cfg: app_config.AppConfig) -> str:
    """How the restarted run's reward rows (deduplicated: the sinks are at-least-once) and late
    rows differ from the uninterrupted run's."""

    def rows(c: app_config.AppConfig, topic: str, key) -> set:
        return {key(json.loads(v)) for v in kafka_tools.read_all(bootstrap, c.kafka.topic(topic))}

    def reward_key(r: dict) -> tuple:
        return r["decision_id"], r["agent"], r["kind"]

    got, ref = rows(cfg, "rewards", reward_key), rows(ref_cfg, "rewards", reward_key)
    late = rows(cfg, "late", lambda r: r["event_id"]), rows(ref_cfg, "late", lambda r: r["event_id"])
    return (
        f"reward rows only after the restart {sorted(got - ref)[:5]} ({len(got - ref)}), only in the "
        f"uninterrupted run {sorted(ref - got)[:5]} ({len(ref - got)}); "
        f"late rows {len(late[0])} vs {len(late[1])}"
    )


def _trials(bootstrap: str, cfg: app_config.AppConfig, key: tuple, arm: str) -> tuple[int, float]:
    """For one learner key and arm of a run: its initial reward rows (deduplicated) and the trials
    summed over its micro-batches topic (which repeats what a killed run wrote after its last
    checkpoint)."""
    campaign, agent = key
    rewards = {
        r["decision_id"]
        for r in map(json.loads, kafka_tools.read_all(bootstrap, cfg.kafka.topic("rewards")))
        if (r["campaign_id"], r["agent"], r["action"], r["kind"]) == (campaign, agent, arm, "initial")
    }
    batches = sum(
        a["trials"]
        for b in map(json.loads, kafka_tools.read_all(bootstrap, cfg.kafka.topic("batches")))
        if (b["campaign_id"], b["agent"]) == (campaign, agent)
        for a in b["arms"]
        if a["arm"] == arm
    )
    return len(rewards), batches


def _publishes(bootstrap: str, cfg: app_config.AppConfig, key: tuple) -> list[tuple[int, bool]]:
    """Every publish of one key on a run's policy-updates topic: (version, written to Redis)."""
    return [
        (u["version"], u["published"])
        for u in map(json.loads, kafka_tools.read_all(bootstrap, cfg.kafka.topic("policy_updates")))
        if (u["campaign_id"], u["agent"]) == key
    ]


def test_restart_from_checkpoint_ends_with_the_params_of_an_uninterrupted_run(
    services, unique_prefix, tmp_path
):
    """Kill the job mid-run, restart it from its latest retained checkpoint, compare the final
    learner params with those of an uninterrupted job over the same events.

    Bound: per key and arm, every sufficient statistic (n, Σr, Σr², Σdelayed) is equal within
    relative 1e-9 (absolute 1e-9 for sums near zero); ``version`` and ``t`` may differ. Why: the
    micro-batches are processing-time windows, so the two runs group the same reward rows into
    different batches (a different number of updates, hence another ``version``; another last
    window, hence another ``t``). The learners' statistics are plain sums (no half-life) over the
    same reward rows: the checkpoint restores the Kafka offsets together with the SQL and learner
    state, so each row is counted exactly once. Only the order of the floating-point additions
    differs, which moves a sum of at most a few thousand rows by ~1e-13 relative, far below 1e-9.
    """
    bootstrap = services.kafka_bootstrap
    # Without drift detection: a drift discounts a learner at the batch where it fires, and the two
    # runs group the rows into different processing-time batches (docs/reproducibility.md).
    creative = {"learner": "PerSegment", "base": {"learner": "ThompsonSampling", "dist": "gaussian"}}
    sections = {"batches": {"interval_ms": 500}, "learners": {"creative": creative}}
    cfg = job_config(services, f"{unique_prefix}a.", tmp_path / "a", **sections)
    ref_cfg = job_config(services, f"{unique_prefix}b.", tmp_path / "b", **sections)
    topics = [t for c in (cfg, ref_cfg) for t in c.kafka.input_topics() + c.kafka.output_topics()]
    kafka_tools.create_topics(bootstrap, topics)
    parts = _thirds()
    _write(bootstrap, ref_cfg.kafka.topic_prefix, [r for part in parts for r in part])

    checkpoints = tmp_path / "checkpoints"
    overrides = {
        "execution.checkpointing.interval": CHECKPOINT_INTERVAL,
        "execution.checkpointing.dir": checkpoints.as_uri(),
        # Flink keys to try the test under, e.g. '{"state.backend.incremental": "false"}'
        **json.loads(os.environ.get("ADLOOP_RESTART_TEST_FLINK_OVERRIDES", "{}")),
    }
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    ref_store = RedisPolicyStore(ref_cfg.redis.url, key_prefix=ref_cfg.redis.key_prefix)
    client = ServingClient(store, seed=0, poll_interval_s=0.1)
    assert client.start(wait_s=10)
    jobs = []
    try:
        # First run: the first third, then the second third while it runs; killed mid-run.
        _write(bootstrap, cfg.kafka.topic_prefix, parts[0])
        jobs.append(_run(cfg, overrides))
        wait_for(
            # Flink keeps only the latest completed checkpoint: count by its number, not by dirs.
            lambda: _latest_checkpoint_number(checkpoints, jobs[0]) >= 2 and _records(store),
            WAIT_S,
            "a second checkpoint and published policies",
        )
        batches_before = sum(kafka_tools.end_offsets(bootstrap, cfg.kafka.topic("batches")).values())
        _write(bootstrap, cfg.kafka.topic_prefix, parts[1])
        wait_for(
            lambda: (
                sum(kafka_tools.end_offsets(bootstrap, cfg.kafka.topic("batches")).values()) > batches_before
            ),
            WAIT_S,
            "micro-batches of the second third",
        )
        time.sleep(1.0)
        jobs[0].cancel().result()
        killed_versions = {key: r.version for key, r in _records(store).items()}
        latest = _completed_checkpoints(checkpoints, jobs[0])[-1]

        # Second run: restored from that checkpoint, the last third arrives while it is down.
        _write(bootstrap, cfg.kafka.topic_prefix, parts[2])
        restored = {**overrides, "execution.state-recovery.path": latest.as_uri()}
        updates_topic = cfg.kafka.topic("policy_updates")
        updates_at_kill = sum(kafka_tools.end_offsets(bootstrap, updates_topic).values())
        jobs.append(_run(cfg, restored))
        # Quiet only counts once the restored job has published (it takes a while to start).
        wait_for(
            lambda: sum(kafka_tools.end_offsets(bootstrap, updates_topic).values()) > updates_at_kill,
            WAIT_S,
            "the restored job's first publish",
        )
        kafka_tools.wait_until_stable(bootstrap, updates_topic, timeout_s=WAIT_S, quiet_s=15)
        # The restored job checkpoints on (with the state changelog, a restore that does not claim
        # the checkpoint fails at its first checkpoint, after it has already published).
        wait_for(
            lambda: _latest_checkpoint_number(checkpoints, jobs[1]) > 0,
            WAIT_S,
            "the restored job's first checkpoint",
        )

        # The reference: one uninterrupted run over the same events.
        jobs.append(_run(ref_cfg))
        kafka_tools.wait_until_stable(
            bootstrap, ref_cfg.kafka.topic("policy_updates"), timeout_s=WAIT_S, quiet_s=15
        )

        final, reference = _records(store), _records(ref_store)
        assert reference and set(final) == set(reference)
        for key, ref in reference.items():
            got = final[key]
            assert got.learner == ref.learner and got.params["config"] == ref.params["config"], key
            got_arms, ref_arms = _arm_stats(got.params), _arm_stats(ref.params)
            assert set(got_arms) == set(ref_arms), key
            for arm, ref_stats in ref_arms.items():
                for i, (a, b) in enumerate(zip(got_arms[arm], ref_stats, strict=True)):
                    if not math.isclose(a, b, rel_tol=REL_TOL, abs_tol=REL_TOL):
                        # Say whether the reward rows and micro-batches differed already.
                        raise AssertionError(
                            f"{key} arm {arm} stat {i}: {a} after the restart, {b} uninterrupted; "
                            f"(initial reward rows, micro-batch trials): after the restart "
                            f"{_trials(bootstrap, cfg, key, arm)}, uninterrupted "
                            f"{_trials(bootstrap, ref_cfg, key, arm)}; "
                            f"{_reward_rows_diff(bootstrap, cfg, ref_cfg)}; "
                            f"versions at the kill {killed_versions.get(key)}, final {got.version}; "
                            f"publishes of the key (version, written): {_publishes(bootstrap, cfg, key)}"
                        )
            assert got.version >= killed_versions.get(key, 0), key
        # The subscriber followed both runs: versions only went up, ending at Redis' final record.
        wait_for(
            lambda: all(client.version(*key) == r.version for key, r in final.items()),
            30,
            "the client to catch up",
        )
        seen = {key: client.versions_seen(*key) for key in final}
        for key, versions in seen.items():
            assert list(versions) == sorted(set(versions)), (key, versions)
        updates = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("policy_updates"))]
        print(
            f"\nrestart from {latest.name}: {len(final)} keys, versions at the kill "
            f"{sum(killed_versions.values())}, final {sum(r.version for r in final.values())} "
            f"(uninterrupted {sum(r.version for r in reference.values())}); publishes ignored as stale "
            f"{sum(not u['published'] for u in updates)}; client saw {sum(map(len, seen.values()))} versions"
        )
    finally:
        client.stop()
        for job in jobs:
            try:
                job.cancel().result()
            except Exception:  # noqa: BLE001 - already finished or cancelled
                pass
        for s in (store, ref_store):
            s.purge()
            s.close()
        kafka_tools.delete_topics(bootstrap, topics)


def _converged(bootstrap: str, cfg: app_config.AppConfig, store: RedisPolicyStore) -> tuple[dict, int]:
    """Wait until Redis holds each key's replayed params (the held records reach it after a few
    retries, RETRY_MS, with no new input); returns them and how many publishes were held."""
    replayed: dict = {}

    def redis_equals_the_replay() -> bool:
        # Replayed again on every look: the micro-batches topic is read committed, and its last
        # transaction commits at a checkpoint that a fault may have delayed, after Redis has
        # already taken the params of those micro-batches.
        replayed.clear()
        replayed.update(replay_batches(bootstrap, cfg))
        return bool(replayed) and all(
            (r := store.get(*key)) and r.version == p["version"] for key, p in replayed.items()
        )

    # A deadline, not a timing: 30 s expired once after a silent Redis, in a full suite run on a
    # loaded 2-core machine (the same trial alone converged well within it).
    try:
        wait_for(redis_equals_the_replay, 120, "the held policies in Redis")
    except TimeoutError as exc:
        differ = {
            key: (p["version"], getattr(store.get(*key), "version", None))
            for key, p in replayed.items()
            if getattr(store.get(*key), "version", None) != p["version"]
        }
        raise TimeoutError(f"{exc}; (replayed, Redis) versions of the keys that differ: {differ}") from exc
    for key, params in replayed.items():
        _close(params, store.get(*key).params)
    updates = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("policy_updates"))]
    return replayed, sum(not u["published"] for u in updates)


def test_redis_outage_of_30s_does_not_fail_the_job_and_the_latest_policies_arrive(
    services, unique_prefix, tmp_path
):
    """Stop the job's Redis for 30 s while micro-batches keep coming; restart it on the same port
    with its data (saved to its RDB file just before the stop, as a Redis with persistence would).
    With no restarts allowed, the job stays RUNNING; once Redis is back, the records the operator
    held are written without any further input, and each key's record equals a replay of the
    micro-batches topic."""
    bootstrap = services.kafka_bootstrap
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    cfg = job_config(
        services,
        unique_prefix,
        tmp_path / "rewards",
        redis={"url": redis_server.url},
        batches={"interval_ms": 500},
    )
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    parts = _thirds()
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    job = None
    try:
        _write(bootstrap, unique_prefix, parts[0])
        job = _run(cfg, {"restart-strategy.type": "none"})
        wait_for(lambda: _records(store), 240, "published policies")
        before = {key: r.version for key, r in _records(store).items()}

        store.redis.save()
        redis_server.stop()
        stopped = time.monotonic()
        _write(bootstrap, unique_prefix, parts[1] + parts[2])
        statuses = set()
        while time.monotonic() - stopped < OUTAGE_S:
            statuses.add(job.get_job_status().result())
            time.sleep(0.5)
        updates_during = sum(kafka_tools.end_offsets(bootstrap, cfg.kafka.topic("policy_updates")).values())
        redis_server.start()

        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("policy_updates"))
        statuses.add(job.get_job_status().result())
        assert statuses == {JobStatus.RUNNING}, statuses

        replayed, held = _converged(bootstrap, cfg, store)
        assert held > 0, "no publish happened during the outage: the test did not test it"
        grew = sum(replayed[key]["version"] > v for key, v in before.items())
        print(
            f"\nredis outage {OUTAGE_S:g}s: {len(replayed)} keys, {grew} advanced past their pre-outage "
            f"version; {held} publishes held; {updates_during} policy updates by the end of the outage; "
            f"job status throughout {sorted(s.name for s in statuses)}"
        )
    finally:
        if job is not None:
            job.cancel().result()
        try:
            store.purge()
        finally:
            store.close()
            redis_server.stop()
            kafka_tools.delete_topics(bootstrap, topics)


FAULT_S = 15.0
JOB_REDIS_PASSWORD = "job-redis-pw"


def _fault(kind: str, admin, server: RedisServer, prefix: str):
    """Start the fault ``kind`` on the job's Redis; returns the function that ends it."""
    if kind == "oom":  # maxmemory with noeviction: every write is refused with OOM
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
        return lambda: admin.config_set("maxmemory", "0")
    if kind == "readonly":  # a failover made this server a replica (of a master that is not there)
        admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        return lambda: admin.execute_command("REPLICAOF", "NO", "ONE")
    if kind == "noperm":  # the job's user loses its key prefix
        admin.execute_command("ACL", "SETUSER", "job", "resetkeys", "~someone-else:*")
        return lambda: admin.execute_command("ACL", "SETUSER", "job", "resetkeys", f"~{prefix}:*")
    if kind == "silent":  # connections are accepted (kernel backlog) and never answered
        os.kill(server.proc.pid, signal.SIGSTOP)
        return lambda: os.kill(server.proc.pid, signal.SIGCONT)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["oom", "readonly", "noperm", "silent"])
def test_a_full_read_only_refusing_or_silent_redis_does_not_fail_the_job_and_the_latest_policies_arrive(
    services, unique_prefix, tmp_path, monkeypatch, kind
):
    """Each Redis fault lasts 15 s while micro-batches keep coming. With no restarts allowed, the
    job stays RUNNING, publishes are held and retried, and once the fault ends Redis holds each
    key's latest params (a replay of the micro-batches topic), with no further input."""
    bootstrap = services.kafka_bootstrap
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    admin = redis.Redis(host="127.0.0.1", port=redis_server.port)
    prefix = unique_prefix.rstrip(".")
    admin.execute_command(
        "ACL", "SETUSER", "job", "on", f">{JOB_REDIS_PASSWORD}", f"~{prefix}:*", "&*", "+@all"
    )
    monkeypatch.setenv("T_JOB_REDIS_PW", JOB_REDIS_PASSWORD)
    cfg = job_config(
        services,
        unique_prefix,
        tmp_path / "rewards",
        redis={"url": redis_server.url, "username": "job", "password": "${env:T_JOB_REDIS_PW}"},
        batches={"interval_ms": 500},
    )
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    parts = _thirds()
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    job = None
    try:
        _write(bootstrap, unique_prefix, parts[0])
        job = _run(cfg, {"restart-strategy.type": "none"})
        wait_for(lambda: _records(store), 240, "published policies")
        end_fault = _fault(kind, admin, redis_server, prefix)
        started = time.monotonic()
        _write(bootstrap, unique_prefix, parts[1] + parts[2])
        statuses = set()
        while time.monotonic() - started < FAULT_S:
            statuses.add(job.get_job_status().result())
            time.sleep(0.5)
        end_fault()

        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("policy_updates"))
        statuses.add(job.get_job_status().result())
        assert statuses == {JobStatus.RUNNING}, statuses
        _, held = _converged(bootstrap, cfg, store)
        assert held > 0, f"no publish happened during the {kind} fault: the test did not test it"
    finally:
        if redis_server.proc is not None and redis_server.proc.poll() is None:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        if job is not None:
            job.cancel().result()
        try:
            store.purge()
        finally:
            store.close()
            admin.close()
            redis_server.stop()
            kafka_tools.delete_topics(bootstrap, topics)
