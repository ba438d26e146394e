"""Check emitted records the way the feedback job's dead-letter step should.

The contract's JSON schemas bound ``ts`` below but not above, so the plausibility rule for
timestamps lives here: a record claiming an event time more than ``FUTURE_TOLERANCE_MS`` after
it arrived is rejected (a real producer's clock cannot be a year ahead).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from contract.events import rejection_reason
from sim.config import DAY_MS
from sim.noise import SimRecord

FUTURE_TOLERANCE_MS = DAY_MS


def check_value(topic: str, value: bytes, *, max_ts_ms: int | None = None) -> str | None:
    """Why the raw record would go to the dead-letter queue, or None when it is valid.

    >>> click = b'{"schema_version":1,"event_id":"e","impression_id":"i","ts":5}'
    >>> check_value("ad.clicks", click)
    >>> check_value("ad.clicks", click[:30])[:12]
    'invalid JSON'
    >>> check_value("ad.clicks", click, max_ts_ms=4)
    'ts: 5 is after the plausible limit 4'
    """
    try:
        record: Any = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"invalid JSON: {exc}"
    reason = rejection_reason(topic, record)
    if reason is None and max_ts_ms is not None and record["ts"] > max_ts_ms:
        return f"ts: {record['ts']} is after the plausible limit {max_ts_ms}"
    return reason


def check_record(record: SimRecord) -> str | None:
    """:func:`check_value` with the future limit taken from the record's arrival time."""
    return check_value(record.topic, record.value, max_ts_ms=record.arrival_ms + FUTURE_TOLERANCE_MS)


def clean_violations(records: Iterable[SimRecord]) -> list[tuple[SimRecord, str]]:
    """Records that are not meant to be malformed but break the contract (should be empty)."""
    out = []
    for record in records:
        if record.malformed is None:
            reason = check_record(record)
            if reason is not None:
                out.append((record, reason))
    return out
