"""Noise on the emitted stream: arrival jitter, duplicates, late arrivals and malformed records.

Each clean event gets an arrival time. Arrival is what orders the output stream:
- on time: ``ts <= arrival <= ts + out_of_order_ms``, so a watermark of
  ``max(ts seen) - out_of_order_ms`` never passes an on-time event;
- late (``late_rate``): ``arrival = ts + out_of_order_ms + late_by_ms * (1 + u)``, behind any
  such watermark; late events are never duplicated, so "late" means one late copy;
- duplicate (``duplicate_rate``, on-time events only): the same bytes sent again, arriving after
  the first copy and still within the bound;
- malformed (``malformed_rate``): an extra, broken record derived from the event, with its own
  event id (when it has one) so it never collides with the clean event in dedup.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from typing import Any

from contract.events import AUCTIONS, CLICKS, CONVERSIONS, IMPRESSIONS, schema
from sim.config import DAY_MS, SimConfig

MALFORMED_KINDS = (
    "invalid_json",
    "missing_field",
    "wrong_type",
    "unknown_schema_version",
    "negative_money",
    "nan_money",
    "bad_propensity",
    "future_ts",
)
_MONEY = {IMPRESSIONS: "win_price", CONVERSIONS: "value", AUCTIONS: "bid"}
KINDS_BY_TOPIC = {
    IMPRESSIONS: MALFORMED_KINDS,
    AUCTIONS: MALFORMED_KINDS,
    CLICKS: tuple(k for k in MALFORMED_KINDS if k not in ("negative_money", "nan_money", "bad_propensity")),
    CONVERSIONS: tuple(k for k in MALFORMED_KINDS if k != "bad_propensity"),
}
# How far ahead a "future_ts" record claims to be: a century, so it is in the future of any
# wall clock too (validation compares event time with processing time).
FUTURE_MS = 36_500 * DAY_MS


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # one instance: json.dumps builds one per call


def encode(payload: dict[str, Any]) -> bytes:
    """Compact JSON; NaN is written as the literal ``NaN`` (which strict parsers reject)."""
    return _ENCODER.encode(payload).encode()


@dataclass(frozen=True, slots=True)
class SimRecord:
    """One record of the output stream. Only topic, key and value go to Kafka or files."""

    topic: str
    key: bytes
    value: bytes
    ts: int  # event time of the clean event (a "future_ts" record claims a later one)
    arrival_ms: int  # simulated arrival time: the stream is ordered by it
    duplicate: bool = False
    late: bool = False
    malformed: str | None = None  # the kind, for malformed records


@dataclass(frozen=True)
class MalformedRecord:
    topic: str
    kind: str
    event_id: str | None  # the id inside the broken record, if it still has one
    source_event_id: str  # the clean event it was derived from
    arrival_ms: int
    value: str  # the raw payload as sent


@dataclass
class NoiseLog:
    duplicated: dict[str, int] = field(default_factory=dict)  # event_id -> extra copies sent
    late: list[str] = field(default_factory=list)  # event_ids sent late
    malformed: list[MalformedRecord] = field(default_factory=list)


def malform(kind: str, topic: str, payload: dict[str, Any], rng: random.Random) -> bytes:
    """A broken record of ``kind`` derived from a valid ``payload`` of ``topic``.

    >>> click = {"schema_version": 1, "event_id": "e", "impression_id": "i", "ts": 5}
    >>> malform("unknown_schema_version", "ad.clicks", click, random.Random(0))
    b'{"schema_version":99,"event_id":"e","impression_id":"i","ts":5}'
    """
    if kind not in KINDS_BY_TOPIC[topic]:
        raise ValueError(
            f"malformed kind {kind!r} does not apply to {topic}; expected one of {KINDS_BY_TOPIC[topic]}"
        )
    bad = copy.deepcopy(payload)
    if kind == "invalid_json":
        text = encode(bad)
        return text[: rng.randrange(1, len(text) - 1)]  # a cut JSON object never parses
    if kind == "missing_field":
        fields = [f for f in schema(topic)["required"] if f != "schema_version"]
        del bad[fields[rng.randrange(len(fields))]]
    elif kind == "wrong_type":
        bad["ts"] = str(bad["ts"])
    elif kind == "unknown_schema_version":
        bad["schema_version"] = 99
    elif kind == "negative_money":
        bad[_MONEY[topic]] = -round(abs(bad[_MONEY[topic]]) + 0.01, 6)
    elif kind == "nan_money":
        bad[_MONEY[topic]] = float("nan")
    elif kind == "bad_propensity":
        bad["decisions"][0]["propensity"] = (0.0, 1.5, -0.25)[rng.randrange(3)]
    elif kind == "future_ts":
        bad["ts"] = bad["ts"] + FUTURE_MS
    return encode(bad)


class Noise:
    """Turns clean events into the records that arrive, logging every injected fault."""

    def __init__(self, config: SimConfig, rng: random.Random, log: NoiseLog, bad_tag: str = "bad") -> None:
        self.config = config
        self.log = log
        self._rng = rng
        self._bad = 0
        self._bad_tag = bad_tag  # malformed records' event ids: <prefix>-<bad_tag><n>

    def emit(self, topic: str, key: bytes, payload: dict[str, Any], ts: int) -> list[SimRecord]:
        cfg, rng = self.config, self._rng
        value = encode(payload)
        event_id = payload["event_id"]
        bound = cfg.out_of_order_ms
        if rng.random() < cfg.late_rate:
            arrival = ts + bound + cfg.late_by_ms + int(rng.random() * cfg.late_by_ms)
            self.log.late.append(event_id)
            out = [SimRecord(topic, key, value, ts, arrival, late=True)]
        else:
            arrival = ts + int(rng.random() * (bound + 1))  # uniform over [ts, ts + bound]
            out = [SimRecord(topic, key, value, ts, arrival)]
            if rng.random() < cfg.duplicate_rate:
                again = arrival + int(rng.random() * (ts + bound - arrival + 1))
                out.append(SimRecord(topic, key, value, ts, again, duplicate=True))
                self.log.duplicated[event_id] = self.log.duplicated.get(event_id, 0) + 1
        if rng.random() < cfg.malformed_rate:
            out.append(self._malformed(topic, key, payload, ts))
        return out

    def _malformed(self, topic: str, key: bytes, payload: dict[str, Any], ts: int) -> SimRecord:
        rng = self._rng
        kinds = KINDS_BY_TOPIC[topic]
        kind = kinds[rng.randrange(len(kinds))]
        self._bad += 1
        bad_id = f"{self.config.prefix}-{self._bad_tag}{self._bad}"
        value = malform(kind, topic, {**payload, "event_id": bad_id}, rng)
        arrival = ts + rng.randint(0, self.config.out_of_order_ms)
        kept_id = bad_id if kind != "invalid_json" and bad_id.encode() in value else None
        self.log.malformed.append(
            MalformedRecord(topic, kind, kept_id, payload["event_id"], arrival, value.decode())
        )
        return SimRecord(topic, key, value, ts, arrival, malformed=kind)
