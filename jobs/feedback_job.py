"""The feedback job: Kafka events in; rewards, late rows and dead letters out.

    python -m jobs.feedback_job [--config flink-conf/adloop.yaml] [--bounded]
    flink run -py jobs/feedback_job.py -pyfs . -- --config flink-conf/adloop.yaml

Every payload of the three input topics is parsed and validated in Flink SQL (JVM): bad ones go
to the dead-letter topic with the reason and their topic, partition and offset; valid ones behind
their partition's clock to the late topic; the rest are deduplicated and attributed into
per-agent reward rows on the rewards topic and table, and micro-batches feed the learners.

This file only wires: the SQL is in sql/ (sql/pipeline.py lists it in order), the planner
internals in jobs/planner.py, the learners' operator in operators/.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path

if __package__ in (None, ""):
    # `flink run -py jobs/feedback_job.py` runs this file as a script; make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyflink.table import StatementSet, StreamTableEnvironment

from config import app as app_config
from jobs import planner
from sql import outputs, pipeline

_VIEW = re.compile(r"CREATE TEMPORARY VIEW IF NOT EXISTS (\w+) AS\s", re.IGNORECASE)

# Views registered from their parsed query rather than their SQL text (see execute_ddl).
PARSED_VIEWS = frozenset({"initial_rewards"})


def execute_ddl(t_env: StreamTableEnvironment, statement: str) -> None:
    """Run one of the job's DDL statements; a view of :data:`PARSED_VIEWS` is registered from its
    parsed query.

    A view created from SQL text is parsed again wherever it is read, and each parse gives its
    CROSS JOIN UNNEST a new correlation id, so the planner sees a different sub-plan per reader.
    ``initial_rewards`` has three readers (the Kafka and Parquet sinks and the micro-batches) and
    unnests every impression's decisions: from SQL text it ran three times. Registered from one
    parsed query it is the same plan for all three and runs once. The other views stay SQL text:
    with ``delayed_rewards`` (or ``rewards``) registered the same way, the three readers share one
    union, everything below it is optimised as one block, and the impressions' deduplication got
    a copy per reader inside it (twice the work and the state)."""
    match = _VIEW.match(statement)
    if match is None or match.group(1) not in PARSED_VIEWS:
        t_env.execute_sql(statement)
    elif match.group(1) not in t_env.list_temporary_views():
        t_env.create_temporary_view(match.group(1), t_env.sql_query(statement[match.end() :]))


def register_sources(t_env: StreamTableEnvironment, cfg: app_config.AppConfig) -> None:
    """Raw Kafka tables, checked views (reason per payload), typed valid views, late/on-time split."""
    for statement in pipeline.source_statements(cfg):
        execute_ddl(t_env, statement)


# The learner operator's uid: its keyed state (the learners' params) maps to it in a savepoint,
# whatever ids the SQL operators get after a change to the SQL.
LEARNER_UID = "adloop-learners"


def build(t_env: StreamTableEnvironment, cfg: app_config.AppConfig) -> StatementSet:
    """Wire sources -> validation -> attribution -> sinks; the caller attaches the statement set
    (with :func:`jobs.planner.attach_with_stream` when a DataStream part reads from the same SQL)."""
    t_env.get_config().set("table.exec.state.ttl", f"{cfg.ingest.dedup_ttl_ms} ms")
    for statement in pipeline.ddl_statements(cfg):
        execute_ddl(t_env, statement)
    statements = t_env.create_statement_set()
    for insert in outputs.insert_statements():
        statements.add_insert_sql(insert)
    return statements


def attach_learners(
    t_env: StreamTableEnvironment, statements: StatementSet, cfg: app_config.AppConfig
) -> StatementSet:
    """Attach ``statements`` with learner_batches -> keyed learner operator (Python) -> Redis;
    returns the statement set of the learners' own sinks (their updates, the batches topic), for
    the caller to attach."""
    from pyflink.common.typeinfo import Types

    from operators.learner_operator import (
        DRIFTS,
        LEARNER_ERRORS,
        OUTPUT_TYPE,
        LearnerOperator,
        OperatorSettings,
    )

    settings = OperatorSettings(
        redis_url=cfg.redis.url,
        key_prefix=cfg.redis.key_prefix,
        publish_interval_ms=cfg.publish.interval_ms,
        publish_every_n=cfg.publish.every_n,
        idle_expiry_ms=cfg.publish.idle_expiry_ms,
        specs={agent: dict(spec) for agent, spec in cfg.learners.specs.items()},
        campaigns=cfg.campaigns.to_mapping(),
        redis_options=cfg.redis.store_options(resolve=False),
    )
    # (window_end, event_time, campaign_id, agent, arms) per key and micro-batch.
    # One conversion feeds both the learners and the batches topic, so the topic holds exactly the
    # micro-batches the learners saw (processing-time windows computed twice would differ).
    batches = planner.attach_with_stream(t_env, statements, t_env.from_path("learner_batches"))
    tail = t_env.create_statement_set()
    t_env.create_temporary_view("learner_batches_seen", t_env.from_data_stream(batches))
    tail.add_insert_sql("INSERT INTO batches_sink SELECT * FROM learner_batches_seen")
    # (campaign_id, agent, version, published, pending) per publish
    updates = (
        batches.key_by(lambda row: f"{row.campaign_id}|{row.agent}", key_type=Types.STRING())
        .process(LearnerOperator(settings), output_type=OUTPUT_TYPE)
        .uid(LEARNER_UID)
        .name("learners")
    )
    add_policy_updates_sink(t_env, tail, cfg, updates)
    # Micro-batches a learner could not apply: dead letters, with their key and the error.
    t_env.create_temporary_view(
        "learner_errors", t_env.from_data_stream(updates.get_side_output(LEARNER_ERRORS))
    )
    tail.add_insert_sql("INSERT INTO dlq_sink SELECT * FROM learner_errors")
    # Reward drifts the learners detected: one record each, for rollout control and operators.
    t_env.create_temporary_view("drift_records", t_env.from_data_stream(updates.get_side_output(DRIFTS)))
    t_env.execute_sql(outputs.drift_sink(cfg))
    tail.add_insert_sql("INSERT INTO drift_sink SELECT * FROM drift_records")
    return tail


def add_policy_updates_sink(t_env: StreamTableEnvironment, statements: StatementSet, cfg, updates) -> None:
    """Every publish, (campaign_id, agent, version, published, pending), to the policy-updates topic."""
    t_env.create_temporary_view("policy_updates", t_env.from_data_stream(updates))
    t_env.execute_sql(outputs.policy_updates_sink(cfg))
    statements.add_insert_sql("INSERT INTO policy_updates_sink SELECT * FROM policy_updates")


def check_connections(cfg: app_config.AppConfig) -> None:
    """Fail at start, with one clear message, when the job's Kafka credentials or permissions
    (connect/preflight.py) or its Redis credentials or certificates are wrong. Redis being down is
    not an error: the job runs and publishes once Redis is back."""
    from connect.preflight import check_kafka
    from state.policy_store import PolicyStoreUnavailable, RedisPolicyStore

    kafka = cfg.kafka
    written = [t for t in kafka.output_topics() if cfg.job.learners or t != kafka.topic("policy_updates")]
    for warning in check_kafka(
        kafka.librdkafka(),
        read_topics=kafka.input_topics(),
        write_topics=written,
        group_id=kafka.group_id,
        transactional_ids=list(outputs.transactional_prefixes(kafka).values()),
        timeout_s=kafka.connect_timeout_ms / 1000,
        secrets=kafka.secret_values(),
    ):
        print(f"feedback_job: warning: {warning}", file=sys.stderr)
    if not cfg.job.learners:
        return
    try:  # a PolicyStoreAuthError (credentials, permission, certificate) stops the start
        with RedisPolicyStore(cfg.redis.url, **cfg.redis.store_options()) as store:
            store.check_access()
    except PolicyStoreUnavailable as exc:
        print(f"feedback_job: warning: {exc}; policies are published once it is back", file=sys.stderr)


def run(cfg: app_config.AppConfig, wait: bool | None = None, flink_overrides: dict[str, str] | None = None):
    """Build and start the job on the mini-cluster (or the cluster ``flink run`` targets).

    Waits for the end when ``wait`` (default: when the Kafka sources are bounded); returns the
    JobClient either way."""
    from jobs.runtime import environments

    cfg = dataclasses.replace(cfg, tables=cfg.tables.absolute())
    check_connections(cfg)
    env, t_env = environments(cfg.job.parallelism, flink_overrides)
    planner.check_flink_version()
    planner.seed_metadata_provider(t_env)
    statements = build(t_env, cfg)
    if cfg.job.learners:
        statements = attach_learners(t_env, statements, cfg)
    else:
        statements.add_insert_sql("INSERT INTO batches_sink SELECT * FROM learner_batches")
    planner.seed_metadata_provider(t_env)
    statements.attach_as_datastream()
    job = env.execute_async(cfg.job.name)
    if wait if wait is not None else cfg.kafka.bounded:
        job.get_job_execution_result().result()
    return job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.feedback_job", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML app config (default flink-conf/adloop.yaml)")
    parser.add_argument("--bounded", action="store_true", help="stop at the offsets latest at start")
    args = parser.parse_args(argv)
    from connect.preflight import KafkaAccessError
    from state.policy_store import PolicyStoreAuthError

    # Under `flink run` the job runs on the cluster; here it runs on a local mini-cluster that lives
    # as long as this process, so an unbounded job keeps the process until it is stopped.
    local = "PYFLINK_GATEWAY_PORT" not in os.environ
    try:
        cfg = app_config.load(args.config)
        if args.bounded:
            cfg = cfg.replace(kafka={"bounded": True})
        if local and not cfg.kafka.bounded:
            print("feedback_job: running on the local mini-cluster until stopped (Ctrl-C)", file=sys.stderr)
        run(cfg, wait=True if local else None)
    except (ValueError, KafkaAccessError, PolicyStoreAuthError, planner.UnsupportedFlinkVersion) as e:
        print(f"feedback_job: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
