"""Flink SQL for the job's outputs: the dead-letter and late views, and every sink table.

Kafka sinks write Flink's ``json`` format. The rewards, micro-batches and policy updates are
written with Kafka transactions when ``kafka.delivery_guarantee`` is exactly-once; late rows and
dead letters stay at-least-once: a duplicate there repeats a diagnostic row and changes no result,
and their writes never wait for a checkpoint.
"""

from __future__ import annotations

from config import app as app_config
from sql import ingest
from sql.schema import (
    BATCH_COLUMNS,
    DLQ_COLUMNS,
    DRIFT_COLUMNS,
    LATE_COLUMNS,
    POLICY_UPDATE_COLUMNS,
    REWARD_COLUMNS,
    REWARD_SCHEMA_VERSION,
    columns,
)

# Sinks written with Kafka transactions, by the name that ends their transactional ids.
TRANSACTIONAL_SINKS = {
    "rewards": "rewards",
    "batches": "batches",
    "policy_updates": "policy-updates",
    "drift": "drift",
}

# The view each SQL output's sink reads.
SQL_OUTPUTS = {"dlq": "dlq_rows", "late": "late_rows", "rewards": "rewards"}


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


def sink_options(kafka: app_config.KafkaConfig, sink: str, key_fields: str | None = None) -> str:
    """JSON Kafka sink of ``sink`` (a topic name of the config); with ``key_fields`` (``a;b``) rows
    of one key share a partition, in order. The client properties of the config apply.

    The producer waits up to ``kafka.producer_linger_ms`` to fill batches of up to
    ``kafka.producer_batch_bytes``. Kafka's defaults (no wait, 16 KiB) sent the reward rows, ~2
    per input record, in many small requests that the producer and the broker each paid for."""
    options = {
        "connector": "kafka",
        "topic": kafka.topic(sink),
        "properties.bootstrap.servers": kafka.bootstrap_servers,
        "properties.linger.ms": str(kafka.producer_linger_ms),
        "properties.batch.size": str(kafka.producer_batch_bytes),
        **_delivery_options(kafka, sink),
        **kafka.table_options(),
    }
    if key_fields is None:
        options["format"] = "json"
    else:
        options["key.format"] = options["value.format"] = "json"
        options["key.fields"] = key_fields
        options["value.fields-include"] = "ALL"
    return ", ".join(f"{ingest.quote(k)} = {ingest.quote(v)}" for k, v in options.items())


def output_views(cfg: app_config.AppConfig) -> list[str]:
    """``dlq_rows`` and ``late_rows``: the dead letters and late rows of all three topics, counted
    in the Flink metrics ``adloop.dlq_records`` and ``adloop.late_records``."""
    dead_letters = "\nUNION ALL ".join(
        ingest.dlq_select(topic, cfg.ingest.dlq_payload_chars) for topic in ingest.STEMS
    )
    late_columns = ", ".join(
        ingest.counted(c, "late_records") if c == "payload" else c for c in columns(LATE_COLUMNS)
    )
    late = "\nUNION ALL ".join(f"SELECT {late_columns} FROM late_{stem}" for stem in ingest.STEMS.values())
    return [
        f"CREATE TEMPORARY VIEW IF NOT EXISTS dlq_rows AS {dead_letters}",
        f"CREATE TEMPORARY VIEW IF NOT EXISTS late_rows AS {late}",
    ]


def sink_statements(cfg: app_config.AppConfig) -> list[str]:
    """The sink tables of the dead letters, late rows, rewards (topic and Parquet table) and
    micro-batches."""
    return [
        f"CREATE TABLE IF NOT EXISTS dlq_sink (\n  {DLQ_COLUMNS}\n) WITH ({sink_options(cfg.kafka, 'dlq')})",
        f"""CREATE TABLE IF NOT EXISTS late_sink (
  {LATE_COLUMNS}
) WITH ({sink_options(cfg.kafka, "late")})""",
        f"""CREATE TABLE IF NOT EXISTS rewards_sink (
  schema_version INT, {REWARD_COLUMNS}
) WITH ({sink_options(cfg.kafka, "rewards")})""",
        # Files are committed on checkpoints only, so each row lands exactly once. Pages are
        # plain-encoded (and Snappy-compressed): trying a dictionary per column and file was 29% of
        # the writer's CPU, and on the 30-day replay the writer fell back to plain pages anyway.
        f"""CREATE TABLE IF NOT EXISTS rewards_parquet (
  schema_version INT, {REWARD_COLUMNS}, dt STRING, hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem', 'path' = '{cfg.tables.rewards_uri()}', 'format' = 'parquet',
  'parquet.enable.dictionary' = 'false', 'sink.partition-commit.policy.kind' = 'success-file'
)""",
        f"""CREATE TABLE IF NOT EXISTS batches_sink (
  {BATCH_COLUMNS}
) WITH ({sink_options(cfg.kafka, "batches", key_fields="campaign_id;agent")})""",
    ]


def policy_updates_sink(cfg: app_config.AppConfig) -> str:
    """Every publish of the learners, keyed by (campaign_id, agent)."""
    options = sink_options(cfg.kafka, "policy_updates", key_fields="campaign_id;agent")
    return f"CREATE TABLE IF NOT EXISTS policy_updates_sink (\n  {POLICY_UPDATE_COLUMNS}\n) WITH ({options})"


def drift_sink(cfg: app_config.AppConfig) -> str:
    """Every reward drift a learner detected, keyed by (campaign_id, agent)."""
    options = sink_options(cfg.kafka, "drift", key_fields="campaign_id;agent")
    return f"CREATE TABLE IF NOT EXISTS drift_sink (\n  {DRIFT_COLUMNS}\n) WITH ({options})"


def insert_statements() -> list[str]:
    """The INSERTs of the SQL outputs: dead letters, late rows, the reward topic and table."""
    reward_columns = ", ".join(columns(REWARD_COLUMNS))
    rewards = SQL_OUTPUTS["rewards"]
    return [
        f"INSERT INTO dlq_sink SELECT * FROM {SQL_OUTPUTS['dlq']}",
        f"INSERT INTO late_sink SELECT * FROM {SQL_OUTPUTS['late']}",
        f"INSERT INTO rewards_sink SELECT {REWARD_SCHEMA_VERSION}, {reward_columns} FROM {rewards}",
        f"""INSERT INTO rewards_parquet
SELECT {REWARD_SCHEMA_VERSION}, {reward_columns}, DATE_FORMAT(TO_TIMESTAMP_LTZ(reward_ts, 3), 'yyyy-MM-dd'),
       DATE_FORMAT(TO_TIMESTAMP_LTZ(reward_ts, 3), 'HH')
FROM {rewards}""",
    ]
