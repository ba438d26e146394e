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
import re
import sys
from pathlib import Path

if __package__ in (None, ""):
    # `flink run -py jobs/feedback_job.py` runs this file as a script; make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyflink.datastream import DataStream
from pyflink.table import StatementSet, StreamTableEnvironment, Table

from contract import events
from jobs import config as app_config
from sql import attribution as attribution_sql
from sql import batches as batches_sql
from sql import ingest

SOURCES = {events.IMPRESSIONS: "impressions", events.CLICKS: "clicks", events.CONVERSIONS: "conversions"}


# Sinks written with Kafka transactions when kafka.delivery_guarantee is exactly-once, by the name
# that ends their transactional ids. Late rows and dead letters stay at-least-once: a duplicate
# there repeats a diagnostic row and changes no result, and their writes never wait for a checkpoint.
TRANSACTIONAL_SINKS = {"rewards": "rewards", "batches": "batches", "policy_updates": "policy-updates"}


def transactional_prefixes(kafka: app_config.KafkaConfig) -> dict[str, str]:
    """The transactional-id prefix of each transactional sink (none when at-least-once)."""
    if kafka.delivery_guarantee != "exactly-once":
        return {}
    return {sink: f"{kafka.transactional_id_prefix}.{name}" for sink, name in TRANSACTIONAL_SINKS.items()}


def _delivery_options(kafka: app_config.KafkaConfig, sink: str) -> dict[str, str]:
    prefix = transactional_prefixes(kafka).get(sink)
    if prefix is None:
        return {"sink.delivery-guarantee": "at-least-once"}
    return {
        "sink.delivery-guarantee": "exactly-once",
        "sink.transactional-id-prefix": prefix,
        "properties.transaction.timeout.ms": str(kafka.transaction_timeout_ms),
    }


def _sink_options(kafka: app_config.KafkaConfig, sink: str, key_fields: str | None = None) -> str:
    """JSON Kafka sink of ``sink`` (a topic name of the config); with ``key_fields`` (``a;b``) rows
    of one key share a partition, in order. The client properties of the config apply.

    The producer waits up to ``kafka.producer_linger_ms`` to fill batches of up to
    ``kafka.producer_batch_bytes``. Kafka's defaults (no wait, 16 KiB) sent the reward rows, ~2
    per input record, in many small requests that the producer and the broker each paid for.

    Rows are written by ``adloop-json`` (udf/.../DirectJsonFormatFactory.java): the JSON of Flink's
    ``json`` format, read back by it, at about a third of its CPU per reward row."""
    options = {
        "connector": "kafka",
        "topic": kafka.topic(sink),
        "properties.bootstrap.servers": kafka.bootstrap_servers,
        "properties.linger.ms": str(kafka.producer_linger_ms),
        "properties.batch.size": str(kafka.producer_batch_bytes),
        **_delivery_options(kafka, sink),
        **kafka.table_options(),
    }
    common = ", ".join(f"{ingest.quote(k)} = {ingest.quote(v)}" for k, v in options.items())
    if key_fields is None:
        return f"{common}, 'format' = 'adloop-json'"
    return (
        f"{common}, 'key.format' = 'adloop-json', 'key.fields' = '{key_fields}', "
        "'value.format' = 'adloop-json', 'value.fields-include' = 'ALL'"
    )


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
    for statement in source_statements(cfg):
        execute_ddl(t_env, statement)


def parse_limits(cfg: app_config.AppConfig) -> ingest.ParseLimits:
    return ingest.ParseLimits(
        max_payload_bytes=cfg.ingest.max_payload_bytes,
        max_amount=cfg.ingest.max_amount,
        feature_dim=cfg.batches.feature_dim,
        max_feature_abs=cfg.ingest.max_feature_abs,
    )


def source_statements(cfg: app_config.AppConfig) -> list[str]:
    statements = ingest.function_statements()
    for topic, stem in SOURCES.items():
        table = ingest.KafkaTable(
            topic=cfg.kafka.topic(stem),
            bootstrap_servers=cfg.kafka.bootstrap_servers,
            group_id=cfg.kafka.group_id,
            startup_mode=cfg.kafka.startup_mode,
            bounded=cfg.kafka.bounded,
            client_options=tuple(cfg.kafka.table_options().items()),
        )
        raw = ingest.raw_source_ddl(
            f"raw_{stem}", table, cfg.ingest.out_of_orderness_ms, cfg.ingest.max_future_ms
        )
        statements += [
            raw,
            ingest.partition_clock_ddl(topic, f"raw_{stem}"),
            ingest.checked_view_ddl(topic, f"clocked_{stem}", cfg.ingest.max_future_ms, parse_limits(cfg)),
            ingest.valid_view_ddl(topic),
            *ingest.late_split_ddl(topic, cfg.ingest.out_of_orderness_ms),
        ]
    return statements


DLQ_COLUMNS = (
    "payload STRING, reason STRING, src_topic STRING, src_partition INT, src_offset BIGINT, "
    "payload_length INT"
)
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


def output_views(cfg: app_config.AppConfig) -> list[str]:
    """``dlq_rows`` and ``late_rows``: the dead letters and late rows of all three topics, counted
    in the Flink metrics ``adloop.dlq_records`` and ``adloop.late_records``."""
    dead_letters = "\nUNION ALL ".join(
        ingest.dlq_select(topic, cfg.ingest.dlq_payload_chars) for topic in SOURCES
    )
    late_columns = ", ".join(
        ingest.counted(c, "late_records") if c == "payload" else c for c in ingest.columns(LATE_COLUMNS)
    )
    late = "\nUNION ALL ".join(f"SELECT {late_columns} FROM late_{stem}" for stem in SOURCES.values())
    return [
        f"CREATE TEMPORARY VIEW IF NOT EXISTS dlq_rows AS {dead_letters}",
        f"CREATE TEMPORARY VIEW IF NOT EXISTS late_rows AS {late}",
    ]


def sink_statements(cfg: app_config.AppConfig) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS dlq_sink (
  {DLQ_COLUMNS}
) WITH ({_sink_options(cfg.kafka, "dlq")})""",
        f"""CREATE TABLE IF NOT EXISTS late_sink (
  {LATE_COLUMNS}
) WITH ({_sink_options(cfg.kafka, "late")})""",
        f"""CREATE TABLE IF NOT EXISTS rewards_sink (
  schema_version INT, {REWARD_COLUMNS}
) WITH ({_sink_options(cfg.kafka, "rewards")})""",
        # Files are committed on checkpoints only, so each row lands exactly once. Pages are
        # plain-encoded (and Snappy-compressed): trying a dictionary per column and file was 29% of
        # the writer's CPU, and on the 30-day replay the writer fell back to plain pages anyway
        # (37.5 MB in ~760 files with or without). 'adloop-parquet' is Parquet written through a
        # buffer (udf/.../BufferedParquetFormatFactory.java): the same files, read as 'parquet'.
        f"""CREATE TABLE IF NOT EXISTS rewards_parquet (
  schema_version INT, {REWARD_COLUMNS}, dt STRING, hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem', 'path' = '{cfg.tables.rewards_uri()}', 'format' = 'adloop-parquet',
  'adloop-parquet.enable.dictionary' = 'false', 'sink.partition-commit.policy.kind' = 'success-file'
)""",
        f"""CREATE TABLE IF NOT EXISTS batches_sink (
  {BATCH_COLUMNS}
) WITH ({_sink_options(cfg.kafka, "batches", key_fields="campaign_id;agent")})""",
    ]


def ddl_statements(cfg: app_config.AppConfig) -> list[str]:
    """Every table and view of the job, in order: sources, attribution, outputs, micro-batches,
    sinks. The SQL-client init script (sql/init.sql) is rendered from the same list."""
    return [
        *source_statements(cfg),
        *attribution_sql.view_statements(cfg.attribution, cfg.rewards),
        *output_views(cfg),
        *batches_sql.batches_views(
            cfg.batches.window(cfg.kafka.bounded)[1],
            cfg.batches.feature_dim,
            contextual_agents=cfg.learners.contextual_agents(),
            clock=cfg.batches.window(cfg.kafka.bounded)[0],
        ),
        *sink_statements(cfg),
    ]


# The learner operator's uid: its keyed state (the learners' params) maps to it in a savepoint,
# whatever ids the SQL operators get after a change to the SQL.
LEARNER_UID = "adloop-learners"

# The views the sinks read, by output.
SQL_OUTPUTS = {"dlq": "dlq_rows", "late": "late_rows", "rewards": "rewards"}


def build(t_env: StreamTableEnvironment, cfg: app_config.AppConfig) -> StatementSet:
    """Wire sources -> validation -> attribution -> sinks; the caller attaches the statement set
    (with :func:`attach_with_stream` when a DataStream part reads from the same SQL)."""
    t_env.get_config().set("table.exec.state.ttl", f"{cfg.ingest.dedup_ttl_ms} ms")
    views = SQL_OUTPUTS
    for statement in ddl_statements(cfg):
        execute_ddl(t_env, statement)

    statements = t_env.create_statement_set()
    statements.add_insert_sql(f"INSERT INTO dlq_sink SELECT * FROM {views['dlq']}")
    statements.add_insert_sql(f"INSERT INTO late_sink SELECT * FROM {views['late']}")
    reward_columns = ", ".join(ingest.columns(REWARD_COLUMNS))
    statements.add_insert_sql(f"INSERT INTO rewards_sink SELECT 1, {reward_columns} FROM {views['rewards']}")
    statements.add_insert_sql(f"""INSERT INTO rewards_parquet
SELECT 1, {reward_columns}, DATE_FORMAT(TO_TIMESTAMP_LTZ(reward_ts, 3), 'yyyy-MM-dd'),
       DATE_FORMAT(TO_TIMESTAMP_LTZ(reward_ts, 3), 'HH')
FROM {views["rewards"]}""")
    return statements


def attach_with_stream(t_env: StreamTableEnvironment, statements: StatementSet, table: Table) -> DataStream:
    """Attach ``statements`` to the job together with ``table`` as a DataStream of ``Row``s, planned
    in one pass; returns the DataStream.

    ``to_data_stream`` plans its table on its own, and a single-output plan is optimised as one
    tree: every view it shares with the statement set's sinks (sources, parse, deduplication,
    attribution) would run twice, and views shared inside it would be copied once per reader. One
    pass over all the outputs plans each shared view once, exactly as the SQL-only job is planned.
    PyFlink has no API for that, hence the Java calls: what ``toDataStream(table)`` does, with the
    statement set's operations in the same ``translate``."""
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    j_tenv, j_table = t_env._j_tenv, table._j_table
    catalog = j_tenv.getCatalogManager()
    schema = j_table.getResolvedSchema()
    produced = jvm.org.apache.flink.table.catalog.SchemaTranslator.createProducingResult(
        catalog.getDataTypeFactory(), schema, schema.toSourceRowDataType()
    )
    if produced.getProjections().isPresent() and list(produced.getProjections().get()) != list(
        schema.getColumnNames()
    ):
        raise RuntimeError(
            f"unexpected projection converting {list(schema.getColumnNames())} to a DataStream"
        )
    sink_table = catalog.resolveCatalogTable(
        jvm.org.apache.flink.table.catalog.ExternalCatalogTable(produced.getSchema())
    )
    to_stream = jvm.org.apache.flink.table.operations.ExternalModifyOperation(
        jvm.org.apache.flink.table.catalog.ContextResolvedTable.anonymous("datastream_sink", sink_table),
        j_table.getQueryOperation(),
        jvm.org.apache.flink.table.connector.ChangelogMode.insertOnly(),
        produced.getPhysicalDataType().orElse(sink_table.getResolvedSchema().toPhysicalRowDataType()),
    )
    operations = jvm.java.util.ArrayList(statements._j_statement_set.getOperations())
    operations.add(to_stream)
    transformations = j_tenv.getPlanner().translate(operations)
    if transformations.size() != operations.size():
        raise RuntimeError(
            f"planning {operations.size()} outputs gave {transformations.size()} transformations"
        )
    j_env = j_tenv.execEnv()
    for transformation in transformations:
        j_env.addOperator(transformation)
    j_env.configure(j_tenv.getConfig().getConfiguration())
    # The planner returns one transformation per output, in order: the DataStream's is the last.
    stream = transformations.get(transformations.size() - 1)
    return DataStream(jvm.org.apache.flink.streaming.api.datastream.DataStream(j_env, stream))


def attach_learners(
    t_env: StreamTableEnvironment, statements: StatementSet, cfg: app_config.AppConfig
) -> StatementSet:
    """Attach ``statements`` with learner_batches -> keyed learner operator (Python) -> Redis;
    returns the statement set of the learners' own sinks (their updates, the batches topic), for
    the caller to attach."""
    from pyflink.common.typeinfo import Types

    from operators.learner_operator import LEARNER_ERRORS, OUTPUT_TYPE, LearnerOperator, OperatorSettings

    settings = OperatorSettings(
        redis_url=cfg.redis.url,
        key_prefix=cfg.redis.key_prefix,
        publish_interval_ms=cfg.publish.interval_ms,
        publish_every_n=cfg.publish.every_n,
        idle_expiry_ms=cfg.publish.idle_expiry_ms,
        specs={agent: dict(spec) for agent, spec in cfg.learners.specs.items()},
        redis_options=cfg.redis.store_options(resolve=False),
    )
    # (window_end, event_time, campaign_id, agent, arms) per key and micro-batch.
    # One conversion feeds both the learners and the batches topic, so the topic holds exactly the
    # micro-batches the learners saw (processing-time windows computed twice would differ).
    batches = attach_with_stream(t_env, statements, t_env.from_path("learner_batches"))
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
    return tail


def add_policy_updates_sink(t_env: StreamTableEnvironment, statements: StatementSet, cfg, updates) -> None:
    """Every publish, (campaign_id, agent, version, published, pending), to the policy-updates topic."""
    t_env.create_temporary_view("policy_updates", t_env.from_data_stream(updates))
    options = _sink_options(cfg.kafka, "policy_updates", key_fields="campaign_id;agent")
    t_env.execute_sql(f"""CREATE TABLE IF NOT EXISTS policy_updates_sink (
  campaign_id STRING, agent STRING, version BIGINT, published BOOLEAN, pending BIGINT
) WITH ({options})""")
    statements.add_insert_sql("INSERT INTO policy_updates_sink SELECT * FROM policy_updates")


def check_connections(cfg: app_config.AppConfig) -> None:
    """Fail at start, with one clear message, when the job's Kafka credentials or permissions
    (connect/preflight.py) or its Redis credentials or certificates are wrong. Redis being down is
    not an error: the job runs and publishes once Redis is back."""
    from connect.preflight import check_kafka
    from state.policy_store import PolicyStoreUnavailable, RedisPolicyStore

    kafka = cfg.kafka
    outputs = [t for t in kafka.output_topics() if cfg.job.learners or t != kafka.topic("policy_updates")]
    for warning in check_kafka(
        kafka.librdkafka(),
        read_topics=kafka.input_topics(),
        write_topics=outputs,
        group_id=kafka.group_id,
        transactional_ids=list(transactional_prefixes(kafka).values()),
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
    check_connections(cfg)
    env, t_env = environments(cfg.job.parallelism, flink_overrides)
    statements = build(t_env, cfg)
    if cfg.job.learners:
        statements = attach_learners(t_env, statements, cfg)
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
    from connect.preflight import KafkaAccessError
    from state.policy_store import PolicyStoreAuthError

    try:
        cfg = app_config.load(args.config)
        if args.bounded:
            cfg = cfg.replace(kafka={"bounded": True})
        run(cfg)
    except (ValueError, KafkaAccessError, PolicyStoreAuthError) as e:
        print(f"feedback_job: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
