"""The feedback job: Kafka events in; rewards, late rows and dead letters out.

    python -m jobs.feedback_job [--config flink-conf/adloop.yaml] [--bounded]
    flink run -py jobs/feedback_job.py -pyfs . -- --config flink-conf/adloop.yaml

Every payload of the three input topics is parsed and validated in Flink SQL (JVM): bad ones go
to the dead-letter topic with the reason and their topic, partition and offset; valid ones behind
the watermark to the late topic; the rest are deduplicated and attributed (sql/attribution.py)
into per-agent reward rows on the rewards topic.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

if __package__ in (None, ""):
    # `flink run -py jobs/feedback_job.py` runs this file as a script; make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyflink.table import StatementSet, StreamTableEnvironment, Table

from contract import events
from jobs import config as app_config
from sql import attribution as attribution_sql
from sql import batches as batches_sql
from sql import ingest

SOURCES = {events.IMPRESSIONS: "impressions", events.CLICKS: "clicks", events.CONVERSIONS: "conversions"}


def _sink_options(topic: str, bootstrap: str, key_fields: str | None = None) -> str:
    """JSON Kafka sink; with ``key_fields`` (``a;b``) rows of one key share a partition, in order."""
    common = (
        f"'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{bootstrap}', "
        "'sink.delivery-guarantee' = 'at-least-once'"
    )
    if key_fields is None:
        return f"{common}, 'format' = 'json'"
    return (
        f"{common}, 'key.format' = 'json', 'key.fields' = '{key_fields}', 'value.format' = 'json', "
        "'value.fields-include' = 'ALL'"
    )


def register_sources(t_env: StreamTableEnvironment, cfg: app_config.AppConfig) -> None:
    """Raw Kafka tables, checked views (reason per payload), typed valid views, late/on-time split."""
    for statement in source_statements(cfg):
        t_env.execute_sql(statement)


def source_statements(cfg: app_config.AppConfig) -> list[str]:
    statements = ingest.function_statements()
    for topic, stem in SOURCES.items():
        table = ingest.KafkaTable(
            topic=cfg.kafka.topic(stem),
            bootstrap_servers=cfg.kafka.bootstrap_servers,
            group_id=cfg.kafka.group_id,
            startup_mode=cfg.kafka.startup_mode,
            bounded=cfg.kafka.bounded,
        )
        raw = ingest.raw_source_ddl(
            f"raw_{stem}", table, cfg.ingest.out_of_orderness_ms, cfg.ingest.max_future_ms
        )
        statements += [
            raw,
            ingest.checked_view_ddl(topic, f"raw_{stem}", cfg.ingest.max_future_ms),
            ingest.valid_view_ddl(topic),
            *ingest.late_split_ddl(topic),
        ]
    return statements


DLQ_COLUMNS = "payload STRING, reason STRING, src_topic STRING, src_partition INT, src_offset BIGINT"
LATE_COLUMNS = (
    "payload STRING, event_id STRING, ts BIGINT, src_topic STRING, src_partition INT, src_offset BIGINT"
)
REWARD_COLUMNS = """decision_id STRING, impression_id STRING, agent STRING, campaign_id STRING,
  segment STRING, action STRING, propensity DOUBLE, policy_version BIGINT, features ARRAY<DOUBLE>,
  kind STRING, conversion_id STRING, reward DOUBLE, click DOUBLE, credit DOUBLE, cost DOUBLE,
  conversion_value DOUBLE, event_ts BIGINT, reward_ts BIGINT"""

# One row per (micro-batch, campaign, agent), its arms nested (sql/batches.py): what a learner saw.
BATCH_COLUMNS = f"""window_end STRING, event_time BIGINT, campaign_id STRING, agent STRING,
  arms ARRAY<ROW<{batches_sql.ARM_FIELDS}>>"""


def output_views() -> list[str]:
    """``dlq_rows`` and ``late_rows``: the dead letters and late rows of all three topics."""
    dead_letters = "\nUNION ALL ".join(ingest.dlq_select(topic) for topic in SOURCES)
    late_columns = ", ".join(ingest.columns(LATE_COLUMNS))
    late = "\nUNION ALL ".join(f"SELECT {late_columns} FROM late_{stem}" for stem in SOURCES.values())
    return [
        f"CREATE TEMPORARY VIEW IF NOT EXISTS dlq_rows AS {dead_letters}",
        f"CREATE TEMPORARY VIEW IF NOT EXISTS late_rows AS {late}",
    ]


def sink_statements(cfg: app_config.AppConfig) -> list[str]:
    bootstrap = cfg.kafka.bootstrap_servers
    return [
        f"""CREATE TABLE IF NOT EXISTS dlq_sink (
  {DLQ_COLUMNS}
) WITH ({_sink_options(cfg.kafka.topic("dlq"), bootstrap)})""",
        f"""CREATE TABLE IF NOT EXISTS late_sink (
  {LATE_COLUMNS}
) WITH ({_sink_options(cfg.kafka.topic("late"), bootstrap)})""",
        f"""CREATE TABLE IF NOT EXISTS rewards_sink (
  schema_version INT, {REWARD_COLUMNS}
) WITH ({_sink_options(cfg.kafka.topic("rewards"), bootstrap)})""",
        # Files are committed on checkpoints only, so each row lands exactly once.
        f"""CREATE TABLE IF NOT EXISTS rewards_parquet (
  schema_version INT, {REWARD_COLUMNS}, dt STRING, hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem', 'path' = '{cfg.tables.rewards_uri()}', 'format' = 'parquet',
  'sink.partition-commit.policy.kind' = 'success-file'
)""",
        f"""CREATE TABLE IF NOT EXISTS batches_sink (
  {BATCH_COLUMNS}
) WITH ({_sink_options(cfg.kafka.topic("batches"), bootstrap, key_fields="campaign_id;agent")})""",
    ]


def ddl_statements(cfg: app_config.AppConfig) -> list[str]:
    """Every table and view of the job, in order: sources, attribution, outputs, micro-batches,
    sinks. The SQL-client init script (sql/init.sql) is rendered from the same list."""
    return [
        *source_statements(cfg),
        *attribution_sql.view_statements(cfg.attribution, cfg.rewards),
        *output_views(),
        *batches_sql.batches_views(
            cfg.batches.interval_ms,
            cfg.batches.feature_dim,
            contextual_agents=cfg.learners.contextual_agents(),
        ),
        *sink_statements(cfg),
    ]


# The views the sinks read, by output.
SQL_OUTPUTS = {"dlq": "dlq_rows", "late": "late_rows", "rewards": "rewards"}
SHARED_OUTPUTS = {"dlq": "shared_dlq_rows", "late": "shared_late_rows", "rewards": "shared_rewards"}


def share_outputs(t_env: StreamTableEnvironment) -> dict[str, str]:
    """Route every output through one Table-to-DataStream conversion, so the whole SQL part is
    planned once; returns the views over it, by output.

    Needed as soon as part of the job is a DataStream (the learners): each ``to_data_stream`` is
    planned on its own, and the statement set too, so without this the sources, the parse and the
    attribution would all run twice. The conversion stays in the JVM."""
    lanes = {
        "dlq": ingest.columns(DLQ_COLUMNS),
        "late": ingest.columns(LATE_COLUMNS),
        "rewards": ingest.columns(REWARD_COLUMNS),
    }
    union_columns = {name: sql_type for lane in lanes.values() for name, sql_type in lane.items()}
    selects = []
    for output, columns in lanes.items():
        cells = [n if n in columns else f"CAST(NULL AS {t}) AS {n}" for n, t in union_columns.items()]
        selects.append(f"SELECT '{output}' AS output, {', '.join(cells)} FROM {SQL_OUTPUTS[output]}")
    outputs = t_env.sql_query("\nUNION ALL ".join(selects))
    t_env.create_temporary_view("job_outputs", _through_data_stream(t_env, outputs))
    for output, view in SHARED_OUTPUTS.items():
        t_env.execute_sql(
            f"CREATE TEMPORARY VIEW IF NOT EXISTS {view} AS "
            f"SELECT {', '.join(lanes[output])} FROM job_outputs WHERE output = '{output}'"
        )
    return SHARED_OUTPUTS


def _through_data_stream(t_env: StreamTableEnvironment, table: Table) -> Table:
    """``table`` converted to a DataStream and back, its rows kept in Flink's internal format.

    PyFlink's ``to_data_stream`` and ``from_data_stream`` convert every row to a Java ``Row`` and
    back, strings and arrays included; bridged to ``RowData``, both conversions are the identity.
    PyFlink has no API for the bridged type, hence the Java calls."""
    from pyflink.java_gateway import get_gateway

    row_data = get_gateway().jvm.org.apache.flink.table.data.RowData
    j_table = table._j_table
    j_type = j_table.getResolvedSchema().toPhysicalRowDataType().bridgedTo(row_data._java_lang_class)
    j_stream = t_env._j_tenv.toDataStream(j_table, j_type)
    return Table(t_env._j_tenv.fromDataStream(j_stream), t_env)


def build(t_env: StreamTableEnvironment, cfg: app_config.AppConfig, shared: bool = False) -> StatementSet:
    """Wire sources -> validation -> attribution -> sinks; the caller executes the statement set.
    ``shared``: route the outputs through :func:`share_outputs` (for a job with DataStream parts)."""
    t_env.get_config().set("table.exec.state.ttl", f"{cfg.ingest.dedup_ttl_ms} ms")
    for statement in [
        *source_statements(cfg),
        *attribution_sql.view_statements(cfg.attribution, cfg.rewards),
        *output_views(),
    ]:
        t_env.execute_sql(statement)
    views = share_outputs(t_env) if shared else SQL_OUTPUTS
    batches = batches_sql.batches_views(
        cfg.batches.interval_ms,
        cfg.batches.feature_dim,
        source=views["rewards"],
        contextual_agents=cfg.learners.contextual_agents(),
    )
    for statement in [*batches, *sink_statements(cfg)]:
        t_env.execute_sql(statement)

    statements = t_env.create_statement_set()
    statements.add_insert_sql(f"INSERT INTO dlq_sink SELECT * FROM {views['dlq']}")
    statements.add_insert_sql(f"INSERT INTO late_sink SELECT * FROM {views['late']}")
    statements.add_insert_sql(f"INSERT INTO rewards_sink SELECT 1, * FROM {views['rewards']}")
    statements.add_insert_sql(f"""INSERT INTO rewards_parquet
SELECT 1, *, DATE_FORMAT(TO_TIMESTAMP_LTZ(reward_ts, 3), 'yyyy-MM-dd'),
       DATE_FORMAT(TO_TIMESTAMP_LTZ(reward_ts, 3), 'HH')
FROM {views["rewards"]}""")
    return statements


def attach_learners(
    t_env: StreamTableEnvironment, statements: StatementSet, cfg: app_config.AppConfig
) -> None:
    """learner_batches -> keyed learner operator (Python) -> Redis; its updates to a Kafka topic."""
    from pyflink.common.typeinfo import Types

    from operators.learner_operator import OUTPUT_TYPE, LearnerOperator, OperatorSettings

    settings = OperatorSettings(
        redis_url=cfg.redis.url,
        key_prefix=cfg.redis.key_prefix,
        publish_interval_ms=cfg.publish.interval_ms,
        publish_every_n=cfg.publish.every_n,
        idle_expiry_ms=cfg.publish.idle_expiry_ms,
        specs={agent: dict(spec) for agent, spec in cfg.learners.specs.items()},
    )
    # (window_end, event_time, campaign_id, agent, arms) per key and micro-batch.
    # One conversion feeds both the learners and the batches topic, so the topic holds exactly the
    # micro-batches the learners saw (processing-time windows computed twice would differ).
    batches = t_env.to_data_stream(t_env.from_path("learner_batches"))
    t_env.create_temporary_view("learner_batches_seen", t_env.from_data_stream(batches))
    statements.add_insert_sql("INSERT INTO batches_sink SELECT * FROM learner_batches_seen")
    # (campaign_id, agent, version, published, pending) per publish
    updates = batches.key_by(lambda row: f"{row.campaign_id}|{row.agent}", key_type=Types.STRING()).process(
        LearnerOperator(settings), output_type=OUTPUT_TYPE
    )
    add_policy_updates_sink(t_env, statements, cfg, updates)


def add_policy_updates_sink(t_env: StreamTableEnvironment, statements: StatementSet, cfg, updates) -> None:
    """Every publish, (campaign_id, agent, version, published, pending), to the policy-updates topic."""
    t_env.create_temporary_view("policy_updates", t_env.from_data_stream(updates))
    options = _sink_options(
        cfg.kafka.topic("policy_updates"), cfg.kafka.bootstrap_servers, key_fields="campaign_id;agent"
    )
    t_env.execute_sql(f"""CREATE TABLE IF NOT EXISTS policy_updates_sink (
  campaign_id STRING, agent STRING, version BIGINT, published BOOLEAN, pending BIGINT
) WITH ({options})""")
    statements.add_insert_sql("INSERT INTO policy_updates_sink SELECT * FROM policy_updates")


def run(cfg: app_config.AppConfig, wait: bool | None = None, flink_overrides: dict[str, str] | None = None):
    """Build and start the job; see :func:`_run`. Planning is retried once when it hit Calcite's
    per-thread metadata provider unset (a py4j call on a JVM thread that never created a planner,
    seen when one process starts several jobs)."""
    try:
        return _run(cfg, wait, flink_overrides)
    except Exception as exc:  # noqa: BLE001 - only that planner error is retried
        if "metadataHandlerProvider" not in str(exc):
            raise
        return _run(cfg, wait, flink_overrides)


def _run(cfg: app_config.AppConfig, wait: bool | None, flink_overrides: dict[str, str] | None):
    """Build and start the job on the mini-cluster (or the cluster ``flink run`` targets).

    Waits for the end when ``wait`` (default: when the Kafka sources are bounded); returns the
    JobClient either way."""
    from jobs.runtime import environments

    cfg = dataclasses.replace(cfg, tables=cfg.tables.absolute())
    env, t_env = environments(cfg.job.parallelism, flink_overrides)
    statements = build(t_env, cfg, shared=cfg.job.learners)
    if cfg.job.learners:
        attach_learners(t_env, statements, cfg)
    else:
        statements.add_insert_sql("INSERT INTO batches_sink SELECT * FROM learner_batches")
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
    try:
        cfg = app_config.load(args.config)
    except ValueError as e:
        print(f"feedback_job: {e}", file=sys.stderr)
        return 2
    if args.bounded:
        cfg = cfg.replace(kafka={"bounded": True})
    run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
