"""The feedback job's stream graph, planned without running: the stateful learner operator carries
a fixed uid, so its keyed state (the learners' params) stays restorable from a savepoint when the
SQL part of the job, whose operators get generated ids, changes."""

from __future__ import annotations

import dataclasses

from jobs import config as app_config
from jobs import feedback_job
from jobs.runtime import environments


def test_learner_operator_has_a_fixed_uid(tmp_path):
    cfg = app_config.AppConfig()
    tables = dataclasses.replace(cfg.tables, rewards_path=str(tmp_path / "rewards"))
    cfg = dataclasses.replace(cfg, tables=tables)
    env, t_env = environments(1, None)
    statements = feedback_job.attach_learners(t_env, feedback_job.build(t_env, cfg), cfg)
    statements.attach_as_datastream()
    graph = env._generate_stream_graph(False)  # what execute() submits, kept for inspection
    uids = {node.getOperatorName(): node.getTransformationUID() for node in graph.getStreamNodes().toArray()}
    assert uids.get("learners") == feedback_job.LEARNER_UID, uids
    assert list(uids.values()).count(feedback_job.LEARNER_UID) == 1


def test_rewards_are_unnested_once_for_all_their_readers(tmp_path):
    # Three readers take the rewards (the Kafka and Parquet sinks and the micro-batches); the
    # decisions of an impression are unnested once for them all: one Correlate for the initial
    # rewards, one for the delayed ones. Views planned per reader gave six.
    cfg = app_config.AppConfig()
    tables = dataclasses.replace(cfg.tables, rewards_path=str(tmp_path / "rewards"))
    cfg = dataclasses.replace(cfg, tables=tables)
    env, t_env = environments(1, None)
    statements = feedback_job.attach_learners(t_env, feedback_job.build(t_env, cfg), cfg)
    statements.attach_as_datastream()
    names = [node.getOperatorName() for node in env._generate_stream_graph(False).getStreamNodes().toArray()]
    correlates = [name for name in names if name.startswith("Correlate")]
    assert len(correlates) == 2, names
