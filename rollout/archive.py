"""Policy versions beyond Redis' capped history: the policy-updates topic carries every version's
params (for the topic's retention), keyed by (campaign, agent)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from state.codec import PolicyRecord

__all__ = ["find_in_topic"]


def find_in_topic(
    settings: Mapping[str, Any],
    topic: str,
    campaign_id: str,
    agent: str,
    version: int,
    *,
    timeout_s: float = 30.0,
) -> PolicyRecord | None:
    """The record of ``version`` of (campaign, agent) from ``topic`` (read committed, from the
    start to the offsets that are the end now), or ``None``. ``settings``: librdkafka's."""
    consumer = Consumer(
        {
            **settings,
            "group.id": "adloop-rollout-cli",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "log_level": 0,
        }  # fmt: skip
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            raise ValueError(f"policy-updates topic {topic!r}: {meta.error if meta else 'not found'}")
        ends = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        found = None
        while ends:
            # Transaction markers and aborted rows count in the end offsets but are never read:
            # a quiet poll means nothing committed is left.
            msg = consumer.poll(min(timeout_s, 3.0))
            if msg is None:
                break
            if msg.error() is not None:
                continue
            partition, offset = msg.partition(), msg.offset()
            if partition is not None and offset is not None and offset + 1 >= ends.get(partition, 0):
                ends.pop(partition, None)
            row = _row(msg.value())
            if (
                row is not None
                and row.get("campaign_id") == campaign_id
                and row.get("agent") == agent
                and row.get("version") == version
                and row.get("outcome") in ("written", "adopt")  # served, not refused or held back
                and isinstance(row.get("params"), str)
            ):
                found = PolicyRecord.from_params(
                    campaign_id,
                    agent,
                    json.loads(row["params"]),
                    updated_at_ms=int(row.get("updated_at") or 0),
                )
        return found
    finally:
        consumer.close()


def _row(value: bytes | None) -> dict[str, Any] | None:
    try:
        row = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    return row if isinstance(row, dict) else None
