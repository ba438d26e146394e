"""The same input gives the same outputs: four runs over one noisy input (late, duplicated,
malformed and out-of-order events on 2 partitions per topic), at parallelism 1 and 2, with the
partitions read far apart in time, and through a TaskManager killed with SIGKILL on a standalone
cluster (bench/replay_trials.py says what each run does and what is compared)."""

from __future__ import annotations

from bench import replay_trials
from scripts import kafka_tools


def test_four_runs_over_one_input_write_the_same_rows_and_learn_the_same_statistics(
    services, unique_prefix, tmp_path
):
    trials = []
    try:
        trials = replay_trials.run_trials(
            services.kafka_bootstrap, services.redis_url, unique_prefix, tmp_path
        )
    finally:
        cfgs = [
            replay_trials.run_config(
                services.kafka_bootstrap, services.redis_url, unique_prefix, run, tmp_path, 1
            )
            for run in ("p1", "p2", "p2-staggered", "p2-tm-killed")
        ]
        kafka_tools.delete_topics(services.kafka_bootstrap, replay_trials.trial_topics(cfgs))
    print("\n" + "\n".join(replay_trials.table(trials)))
    reference = trials[0].outcome
    # Every kind of row is there to compare: the input's noise shows in each output.
    assert reference.rewards and reference.late and reference.dlq and reference.stats
    assert reference.reward_duplicates == 0
    # Every initial reward row reached the learners: their trials are the rows.
    assert replay_trials.unbatched(reference) == {}
    # The killed TaskManager did fail the job over.
    assert trials[-1].run == "p2-tm-killed" and trials[-1].failovers >= 1
    for trial in trials[1:]:
        diff = replay_trials.difference(trial.outcome, reference)
        assert diff.zero, (trial.run, diff)
