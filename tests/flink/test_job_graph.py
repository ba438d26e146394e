"""The feedback job's stream graph, planned without running: the stateful learner operator carries
a fixed uid, so its keyed state (the learners' params) stays restorable from a savepoint when the
SQL part of the job, whose operators get generated ids, changes; and shared work is planned once."""

from __future__ import annotations

import dataclasses
import re

from config import app as app_config
from jobs import feedback_job
from jobs.runtime import environments


def _stream_graph(tmp_path):
    """The whole job's stream graph: what execute() would submit."""
    cfg = app_config.AppConfig()
    tables = dataclasses.replace(cfg.tables, rewards_path=str(tmp_path / "rewards"))
    cfg = dataclasses.replace(cfg, tables=tables)
    env, t_env = environments(1, None)
    statements = feedback_job.attach_learners(t_env, feedback_job.build(t_env, cfg), cfg)
    statements.attach_as_datastream()
    return env._generate_stream_graph(False)


def _stream_nodes(tmp_path) -> list:
    return list(_stream_graph(tmp_path).getStreamNodes().toArray())


def test_learner_operator_has_a_fixed_uid(tmp_path):
    uids = {node.getOperatorName(): node.getTransformationUID() for node in _stream_nodes(tmp_path)}
    assert uids.get("learners") == feedback_job.LEARNER_UID, uids
    assert list(uids.values()).count(feedback_job.LEARNER_UID) == 1


def test_initial_rewards_are_unnested_once_and_impressions_deduplicated_once(tmp_path):
    # Three readers take the rewards (the Kafka and Parquet sinks and the micro-batches). The
    # initial reward rows (three per impression) are unnested once for them all, the delayed ones
    # once per reader: four Correlates, and a fifth for the auctions' decisions (one reader, the
    # micro-batches); from SQL text alone there were six for the rewards. The deduplications stay
    # one per stream (impressions, clicks, conversions by event_id and by conversion_id, auctions):
    # five; sharing the delayed rows as well gave the impressions a second one.
    names = [node.getOperatorName() for node in _stream_nodes(tmp_path)]
    assert len([name for name in names if name.startswith("Correlate")]) == 5, names
    assert len([name for name in names if name.startswith("Deduplicate")]) == 5, names


def test_no_task_of_the_job_is_a_lone_projection(tmp_path):
    # A union's reader cannot chain to either input, so a projection over the union of initial and
    # delayed reward rows would be a task of its own, every row one network hop more on its way to
    # the micro-batches. keyed_rewards lists its columns in the order the aggregate reads them,
    # so the planner pushes it under the union and leaves nothing to do over it.
    vertices = _stream_graph(tmp_path).getJobGraph().getVerticesAsArray()
    names = [vertex.getName() for vertex in vertices]
    assert [name for name in names if re.fullmatch(r"Calc\[\d+\]", name)] == [], names
