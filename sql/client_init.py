"""Render the Flink SQL-client init script: every table and view of the feedback job, plus the
reward tables for data engineers to query.

    python -m sql.client_init [--config flink-conf/adloop.yaml] > sql/init.sql
    scripts/sql_client.sh -i sql/init.sql -f sql/queries/ctr_by_creative_hour.sql

``sql/init.sql`` in the repository is rendered from the default config (a test keeps it current).
"""

from __future__ import annotations

import argparse
import sys

from config import app as app_config
from sql.batches import batch_arms_view
from sql.ingest import quote
from sql.pipeline import ddl_statements
from sql.schema import (
    BATCH_COLUMNS,
    DLQ_COLUMNS,
    DRIFT_COLUMNS,
    LATE_COLUMNS,
    POLICY_UPDATE_COLUMNS,
    REWARD_COLUMNS,
)


def _kafka_source(name: str, columns: str, topic: str, cfg: app_config.AppConfig) -> str:
    """A JSON topic, read committed. With client properties in the config (a secured cluster),
    their secrets are written into the script: keep such a script as you keep the credentials."""
    client = "".join(f",\n  {quote(k)} = {quote(v)}" for k, v in cfg.kafka.table_options().items())
    return f"""CREATE TABLE IF NOT EXISTS {name} (
  {columns}
) WITH (
  'connector' = 'kafka', 'topic' = '{topic}',
  'properties.bootstrap.servers' = '{cfg.kafka.bootstrap_servers}', 'properties.group.id' = 'sql-client',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset', 'format' = 'json'{client}
)"""


def query_tables(cfg: app_config.AppConfig) -> list[str]:
    """Tables to query: the Parquet reward table (batch), the reward/DLQ/late/batch topics
    (streaming; the micro-batches also one row per arm) and an hourly aggregate per (campaign,
    agent, action)."""
    return [
        # A relative path stays relative (scripts/sql_client.sh runs from the project root).
        f"""CREATE TABLE IF NOT EXISTS rewards_table (
  schema_version INT, {REWARD_COLUMNS}, dt STRING, hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem', 'path' = '{cfg.tables.rewards_uri()}', 'format' = 'parquet'
)""",
        _kafka_source(
            "rewards_stream", f"schema_version INT, {REWARD_COLUMNS}", cfg.kafka.topic("rewards"), cfg
        ),
        _kafka_source("learner_batches_stream", BATCH_COLUMNS, cfg.kafka.topic("batches"), cfg),
        batch_arms_view("learner_batches_stream", "learner_batch_arms_stream"),
        _kafka_source("dead_letters", DLQ_COLUMNS, cfg.kafka.topic("dlq"), cfg),
        _kafka_source("late_events", LATE_COLUMNS, cfg.kafka.topic("late"), cfg),
        _kafka_source("learner_drifts", DRIFT_COLUMNS, cfg.kafka.topic("drift"), cfg),
        # Every publish, with its params (sql/queries/policy_versions.sql lists the versions).
        _kafka_source("policy_updates_stream", POLICY_UPDATE_COLUMNS, cfg.kafka.topic("policy_updates"), cfg),
        # (dt, hr, campaign_id, agent, action, decisions, clicks, credit, cost, reward)
        """CREATE TEMPORARY VIEW IF NOT EXISTS rewards_hourly AS
SELECT dt, hr, campaign_id, agent, action,
       SUM(CASE WHEN kind = 'initial' THEN 1 ELSE 0 END) AS decisions,
       SUM(click) AS clicks, SUM(credit) AS credit, SUM(cost) AS cost, SUM(reward) AS reward
FROM rewards_table
GROUP BY dt, hr, campaign_id, agent, action""",
    ]


def render(cfg: app_config.AppConfig) -> str:
    header = [
        "-- Flink SQL-client init script for adloop, rendered by `python -m sql.client_init`.",
        "-- Query tables: rewards_table (Parquet, batch), rewards_hourly, rewards_stream,",
        "-- learner_batches_stream, learner_batch_arms_stream, dead_letters, late_events,",
        "-- learner_drifts, policy_updates_stream; plus every",
        "-- view of the feedback job.",
        "SET 'sql-client.execution.result-mode' = 'tableau';",
        "SET 'table.local-time-zone' = 'UTC';",
    ]
    body = [f"{statement};" for statement in (*query_tables(cfg), *ddl_statements(cfg))]
    return "\n".join(header) + "\n\n" + "\n\n".join(body) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sql.client_init", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML app config (default flink-conf/adloop.yaml)")
    args = parser.parse_args(argv)
    try:
        cfg = app_config.load(args.config)
    except ValueError as e:
        print(f"client_init: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(render(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
