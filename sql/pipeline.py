"""Every table and view of the feedback job, in order: sources, attribution, outputs,
micro-batches, sinks. The job (jobs/feedback_job.py) runs them; the SQL-client init script
(sql/init.sql) is rendered from the same list."""

from __future__ import annotations

from config import app as app_config
from sql import attribution, batches, ingest, outputs


def parse_limits(cfg: app_config.AppConfig) -> ingest.ParseLimits:
    return ingest.ParseLimits(
        max_payload_bytes=cfg.ingest.max_payload_bytes,
        max_amount=cfg.ingest.max_amount,
        feature_dim=cfg.batches.feature_dim,
        max_feature_abs=cfg.ingest.max_feature_abs,
    )


def source_statements(cfg: app_config.AppConfig) -> list[str]:
    """Raw Kafka tables, partition clocks, checked views (a reason per payload), typed valid views,
    the late/on-time split."""
    statements = ingest.function_statements()
    for topic, stem in ingest.STEMS.items():
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


def ddl_statements(cfg: app_config.AppConfig) -> list[str]:
    """Every table and view of the job, in order."""
    clock, interval_ms = cfg.batches.window(cfg.kafka.bounded)
    return [
        *source_statements(cfg),
        *attribution.view_statements(cfg.attribution, cfg.rewards),
        *outputs.output_views(cfg),
        *batches.batches_views(
            interval_ms,
            cfg.batches.feature_dim,
            campaigns=cfg.campaigns,
            rewards=cfg.rewards,
            contextual_agents=cfg.learners.contextual_agents(),
            clock=clock,
            segmented_agents=cfg.learners.segmented_agents(),
            sample_rates=cfg.learners.sample_rates(),
        ),
        *outputs.sink_statements(cfg),
    ]
