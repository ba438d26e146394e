"""A fast, hand-written restatement of the ingest validation rules, for the reference.

``sim.validate.check_record`` (jsonschema) is exact but costs ~0.6 ms a record; the reference has
to take tens of thousands of records in seconds. :func:`is_valid` states the same rules in plain
Python (a unit test checks it agrees with ``check_record`` on noisy simulator streams), and the
exact reason is only computed for the few records it rejects.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from contract.events import AUCTIONS, CLICKS, CONVERSIONS, IMPRESSIONS
from sim.noise import SimRecord
from sim.validate import FUTURE_TOLERANCE_MS

AGENTS = ("creative", "bid", "budget")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any) -> bool:  # JSON Schema: 5.0 is an integer too
    return _number(v) and (isinstance(v, int) or float(v).is_integer())


def _version(v: Any) -> bool:
    return _number(v) and v == 1


def _text(v: Any) -> bool:
    return isinstance(v, str) and len(v) > 0


def _non_negative_int(v: Any) -> bool:
    return _integer(v) and v >= 0


def _money(v: Any) -> bool:
    return _number(v) and v >= 0


def _features(v: Any) -> bool:
    return isinstance(v, list) and all(_number(x) for x in v)


def _decision(d: Any) -> bool:
    return (
        isinstance(d, dict)
        and d.keys() == {"agent", "action", "propensity", "policy_version"}
        and d["agent"] in AGENTS
        and isinstance(d["agent"], str)
        and _text(d["action"])
        and _number(d["propensity"])
        and 0 < d["propensity"] <= 1
        and _non_negative_int(d["policy_version"])
    )


def _decisions(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(_decision(d) for d in v)


_COMMON: dict[str, Callable[[Any], bool]] = {
    "schema_version": _version,
    "event_id": _text,
    "ts": _non_negative_int,
}
FIELDS: dict[str, dict[str, Callable[[Any], bool]]] = {
    IMPRESSIONS: {
        **_COMMON,
        "impression_id": _text,
        "user_id": _text,
        "campaign_id": _text,
        "segment": _text,
        "creative_id": _text,
        "bid_price": _money,
        "win_price": _money,
        "features": _features,
        "decisions": _decisions,
    },
    CLICKS: {**_COMMON, "impression_id": _text},
    AUCTIONS: {
        **_COMMON,
        "request_id": _text,
        "campaign_id": _text,
        "segment": _text,
        "time_block": lambda v: _non_negative_int(v) and v < 1440,
        "bid": _money,
        "won": lambda v: _integer(v) and v in (0, 1),
        "clearing_price": _money,
        "decisions": lambda v: _decisions(v) and all(d["agent"] in ("bid", "budget") for d in v),
    },
    CONVERSIONS: {
        **_COMMON,
        "conversion_id": _text,
        "user_id": _text,
        "campaign_id": _text,
        "value": _money,
    },
}


# Fields a record of the topic may leave out.
OPTIONAL: dict[str, set[str]] = {AUCTIONS: {"clearing_price"}}


def parse_valid(record: SimRecord) -> dict[str, Any] | None:
    """The parsed event if ``record`` passes validation, else None (it belongs in the DLQ)."""
    try:
        event = json.loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    fields = FIELDS[record.topic]
    optional = OPTIONAL.get(record.topic, set())
    if not isinstance(event, dict) or not fields.keys() - optional <= event.keys() <= fields.keys():
        return None  # every field but the optional ones is required, and no other is allowed
    if not all(check(event[name]) for name, check in fields.items() if name in event):
        return None
    if event["ts"] > record.arrival_ms + FUTURE_TOLERANCE_MS:
        return None
    return event


def is_valid(record: SimRecord) -> bool:
    return parse_valid(record) is not None
