"""Crash trials through the real job: a TaskManager killed with SIGKILL at a seeded time, and the
Kafka broker killed and restarted a minute later, each under a steady input, on a standalone
cluster at parallelism 2 with learners on. Each trial's reward rows (read committed), late and
dead-letter rows and learner statistics equal the fault-free run's; the Redis stream that serving
nodes follow shows no version going down (bench/crash_trials.py says what each trial does; the
bench runs five TaskManager kills)."""

from __future__ import annotations

import os

import pytest

from bench import crash_trials
from bench import replay_trials as rt
from scripts import kafka_tools
from scripts import services as svc


@pytest.fixture
def broker(services, tmp_path):
    """A broker of this test's own, which the trial may kill (the session's is shared)."""
    home = tmp_path / "broker"
    home.mkdir()
    own = svc.KafkaBroker(home, owner_pid=os.getpid())
    own.format()
    own.start(watch_ttl_s=3600)
    yield own
    own.stop()


def test_a_killed_taskmanager_and_a_restarted_broker_change_no_output(
    services, broker, unique_prefix, tmp_path
):
    trials = []
    try:
        trials = crash_trials.run_trials(
            broker, services.redis_url, unique_prefix, tmp_path, trials=1, days=1, input_s=40.0
        )
    finally:
        topics = crash_trials.trial_topics(broker, services.redis_url, unique_prefix, tmp_path, trials=1)
        if broker.process is not None and broker.process.poll() is None:
            kafka_tools.delete_topics(broker.bootstrap, topics)
    print("\n" + "\n".join(crash_trials.table(trials)))
    reference = trials[0].outcome
    # Every kind of row is there to compare: the input's noise shows in each output.
    assert reference.rewards and reference.late and reference.dlq and reference.stats
    assert rt.unbatched(reference) == {}
    assert [t.run for t in trials] == ["fault-free", "tm-kill-1", "broker-restart"]
    # The killed TaskManager failed the job over; the job came back after each fault.
    assert trials[1].failovers >= 1
    assert all(t.recovery_s is not None for t in trials[1:])
    for trial in trials:
        assert trial.policy_keys > 0 and trial.version_regressions == 0, trial.run
    for trial in trials[1:]:
        diff = rt.difference(trial.outcome, reference)
        assert diff.zero, (trial.run, diff)
