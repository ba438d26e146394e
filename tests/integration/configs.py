"""The feedback job's config for one integration test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from config import app as app_config
from scripts import kafka_tools
from sim.noise import SimRecord
from tests.reference.attribution import reference_rewards

# Reward rows whose reward_ts is this far behind the newest event are settled: the watermark
# trails the newest event by the out-of-orderness bound, and credit waits for the click window.
SETTLED_MS = 3 * 3_600_000


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


def rewards_and_late(bootstrap: str, cfg: app_config.AppConfig) -> tuple[list[dict], list[str]]:
    """The reward rows on the job's rewards topic, and the event ids on its late topic."""
    rows = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("rewards"))]
    late = [json.loads(v)["event_id"] for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("late"))]
    return rows, late


def settled_rows(
    records: list[SimRecord],
    rows: list[dict],
    late: list[str],
    cfg: app_config.AppConfig,
    kinds: tuple[str, ...] = ("initial", "delayed"),
    settled_ms: int = SETTLED_MS,
) -> tuple[list[dict], list[dict]]:
    """The reference attribution's reward rows of ``kinds`` and the job's (``rows``), both cut to
    those whose reward_ts is ``settled_ms`` behind the newest event: (expected, actual)."""
    cutoff = max(r.ts for r in records) - settled_ms

    def settled(row: dict) -> bool:
        return row["kind"] in kinds and row["reward_ts"] < cutoff

    expected = [row for row in reference_rewards(records, late, cfg.attribution, cfg.rewards) if settled(row)]
    return expected, [row for row in rows if settled(row)]
