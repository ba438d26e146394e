"""The feedback job's config for one integration test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs import config as app_config


def job_config(
    services: Any, prefix: str, rewards_dir: Path, **sections: dict[str, Any]
) -> app_config.AppConfig:
    """A config on the session's Kafka and Redis whose topics, consumer group, Redis keys and reward
    files are the test's own (``prefix``, ``rewards_dir``); ``sections`` change further keys, as
    ``AppConfig.replace`` does (``kafka={"bounded": True}`` keeps the other Kafka keys)."""
    cfg = app_config.AppConfig().replace(
        kafka={
            "bootstrap_servers": services.kafka_bootstrap,
            "topic_prefix": prefix,
            "group_id": f"{prefix}job",
        },
        redis={"url": services.redis_url, "key_prefix": prefix.rstrip(".")},
        tables={"rewards_path": str(rewards_dir)},
    )
    return cfg.replace(**sections) if sections else cfg
