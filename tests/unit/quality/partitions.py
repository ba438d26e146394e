"""Synthetic ad.rewards partitions written with pyarrow, valid unless a test breaks them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

DT, HR = "2024-05-01", "13"
HOUR_START = int(datetime(2024, 5, 1, 13, tzinfo=UTC).timestamp() * 1000)
AGENTS = ("creative", "bid", "budget")
PROPENSITY = {"creative": 0.25, "bid": 0.5, "budget": 1.0}

SCHEMA = pa.schema(
    [
        ("schema_version", pa.int32()),
        ("decision_id", pa.string()),
        ("impression_id", pa.string()),
        ("agent", pa.string()),
        ("campaign_id", pa.string()),
        ("segment", pa.string()),
        ("action", pa.string()),
        ("propensity", pa.float64()),
        ("policy_version", pa.int64()),
        ("features", pa.list_(pa.float64())),
        ("kind", pa.string()),
        ("conversion_id", pa.string()),
        ("reward", pa.float64()),
        ("click", pa.float64()),
        ("credit", pa.float64()),
        ("cost", pa.float64()),
        ("conversion_value", pa.float64()),
        ("event_ts", pa.int64()),
        ("reward_ts", pa.int64()),
    ]
)


def _row(impression: str, agent: str, **fields: Any) -> dict[str, Any]:
    row = {
        "schema_version": 1,
        "decision_id": f"{impression}:{agent}",
        "impression_id": impression,
        "agent": agent,
        "campaign_id": "c1",
        "segment": "s1",
        "action": f"{agent}-a",
        "propensity": PROPENSITY[agent],
        "policy_version": 3,
        "features": [1.0, 0.5],
        "kind": "initial",
        "conversion_id": None,
        "reward": 0.0,
        "click": 0.0,
        "credit": 0.0,
        "cost": 0.0,
        "conversion_value": None,
        "event_ts": HOUR_START - 60_000,
        "reward_ts": HOUR_START + 60_000,
    }
    row.update(fields)
    return row


def valid_rows() -> list[dict[str, Any]]:
    """Rows 0-8: initial rows of i1..i3 (3 agents each); rows 9-14: conversion v1 split over i1
    and i2; rows 15-17: conversion v2 with the single touch i3."""
    rows = []
    for n, impression in enumerate(("i1", "i2", "i3")):
        for agent in AGENTS:
            click = float(n == 0)
            rows.append(_row(impression, agent, click=click, cost=0.8, reward=click - 0.8))
    conversions = (("v1", 25.0, (("i1", 0.6), ("i2", 0.4))), ("v2", 10.0, (("i3", 1.0),)))
    for conversion, value, touches in conversions:
        for impression, share in touches:
            for agent in AGENTS:
                credit = share * value
                rows.append(
                    _row(
                        impression,
                        agent,
                        kind="delayed",
                        conversion_id=conversion,
                        conversion_value=value,
                        credit=credit,
                        reward=credit,
                        reward_ts=HOUR_START + 1_800_000,
                    )
                )
    return rows


FIRST_INITIAL = 0
FIRST_V1 = 9
FIRST_V2 = 15


def write_partition(root: Path, rows: list[dict[str, Any]], *, dt: str = DT, hr: str = HR) -> Path:
    """Write ``rows`` as one Parquet file in ``root/dt=.../hr=...`` and return the partition directory."""
    partition = root / f"dt={dt}" / f"hr={hr}"
    partition.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), partition / "part-0.parquet")
    return partition
