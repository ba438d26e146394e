"""A savepoint of the job restores into the job of a changed SQL, where the change is harmless:
here, other reward weights (constants of the reward projection). Every operator's state carries
over, so the upgraded run writes what one run over all the input writes: the same reward rows,
late rows and dead letters, each reward computed with the weights in force when it was emitted."""

from __future__ import annotations

import math

from bench.replay_trials import (
    NOISE,
    WAIT_S,
    outcome,
    read_to,
    run_bounded,
    run_config,
    same_row,
    trial_topics,
    wait_for,
    write_input,
)
from jobs import feedback_job, planner
from scripts import kafka_tools
from sim.config import SimConfig
from sim.simulator import Simulator

SIM = SimConfig(seed=5, days=2, n_users=1_000, requests_per_day=8_000, **NOISE)
OLD_CLICK, NEW_CLICK = 1.0, 2.5  # the creative agent's click weight before and after the upgrade


def test_a_savepoint_restores_into_the_job_with_other_reward_weights(services, unique_prefix, tmp_path):
    records = [r for chunk in Simulator(SIM).run() for r in chunk.records]
    half = len(records) // 2
    bootstrap = services.kafka_bootstrap
    configs = {
        run: run_config(bootstrap, services.redis_url, unique_prefix, run, tmp_path, 1).replace(
            job={"learners": False}
        )
        for run in ("upgraded", "reference")
    }
    new_weights = {"creative": {"click": NEW_CLICK, "credit": 1.0, "cost": 0.0}}
    old = configs["upgraded"]
    new = old.replace(rewards=new_weights)
    reference = configs["reference"].replace(rewards=new_weights)
    assert old.rewards.creative.click == OLD_CLICK
    kafka_tools.create_topics(bootstrap, trial_topics(configs.values()))

    # The old job reads the first half, then stops with a savepoint (no drain: a live upgrade).
    write_input(old, records[:half])
    overrides = {"execution.checkpointing.interval": "2 s"}
    job = feedback_job.run(old, wait=False, flink_overrides=overrides)
    try:
        wait_for(lambda: read_to(old, range(2)), WAIT_S, "the old job to read the first half")
        savepoint = planner.stop_with_savepoint(job, (tmp_path / "savepoints").as_uri(), drain=False)
    except BaseException:
        job.cancel().result()
        raise

    # The new job, restored from it, reads the rest and is drained once it has read it all. (It
    # stays unbounded: the Kafka splits in the savepoint keep the old job's stopping offsets, none.)
    write_input(old, records[half:])
    restored = {**overrides, "execution.state-recovery.path": savepoint}
    job = feedback_job.run(new, wait=False, flink_overrides=restored)
    try:
        wait_for(lambda: read_to(new, range(2)), WAIT_S, "the new job to read the rest")
        planner.stop_with_savepoint(job, (tmp_path / "savepoints").as_uri(), drain=True)
    except BaseException:
        job.cancel().result()
        raise
    run_bounded(reference)

    got, ref = outcome(old), outcome(reference)
    assert got.reward_duplicates == 0
    assert got.rewards.keys() == ref.rewards.keys()
    assert got.late == ref.late and got.late
    assert got.dlq == ref.dlq and got.dlq
    weights_used = {"old": 0, "new": 0}
    for key, row in got.rewards.items():
        expected = ref.rewards[key]
        assert same_row({**row, "reward": None}, {**expected, "reward": None}), (row, expected)
        if row["agent"] == "creative" and row["click"] == 1.0:
            old_reward = expected["reward"] - (NEW_CLICK - OLD_CLICK)
            if math.isclose(row["reward"], expected["reward"], rel_tol=1e-9, abs_tol=1e-9):
                weights_used["new"] += 1
            else:
                assert math.isclose(row["reward"], old_reward, rel_tol=1e-9, abs_tol=1e-9), row
                weights_used["old"] += 1
        else:
            assert math.isclose(row["reward"], expected["reward"], rel_tol=1e-9, abs_tol=1e-9), row
    assert weights_used["old"] > 0 and weights_used["new"] > 0, weights_used
