"""Load the versioned event schemas and validate records against them.

The schema files in ``contract/schemas`` are the single definition of the event contract:
producers, the SQL DDL and the tests all read them from here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_DIR = Path(__file__).parent / "schemas"

IMPRESSIONS = "ad.impressions"
CLICKS = "ad.clicks"
CONVERSIONS = "ad.conversions"
AUCTIONS = "ad.auctions"
TOPICS = (IMPRESSIONS, CLICKS, CONVERSIONS, AUCTIONS)

CURRENT_VERSION = 1

# JSON-schema type -> Flink SQL type, for the columns the DDL derives from a schema.
_SQL_TYPES = {"string": "STRING", "integer": "BIGINT", "number": "DOUBLE"}


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    required: bool


@cache
def schema(topic: str, version: int = CURRENT_VERSION) -> dict[str, Any]:
    """The JSON schema of ``topic`` at ``version``; ValueError names what exists otherwise."""
    path = SCHEMA_DIR / f"{topic}.v{version}.json"
    if not path.exists():
        known = sorted(p.name for p in SCHEMA_DIR.glob("*.json"))
        raise ValueError(f"no schema for topic {topic!r} version {version}: expected one of {known}")
    return json.loads(path.read_text())


@cache
def _validator(topic: str, version: int) -> Draft202012Validator:
    return Draft202012Validator(schema(topic, version))


def known_versions(topic: str) -> list[int]:
    return sorted(int(p.name.rsplit(".v", 1)[1].split(".")[0]) for p in SCHEMA_DIR.glob(f"{topic}.v*.json"))


def rejection_reason(topic: str, record: Any) -> str | None:
    """Why ``record`` breaks the contract of ``topic``, or None when it is valid.

    >>> rejection_reason("ad.clicks", {"schema_version": 1, "event_id": "e1", "impression_id": "i1", "ts": 5})
    >>> rejection_reason("ad.clicks", {"schema_version": 9, "event_id": "e1", "impression_id": "i1", "ts": 5})
    'unknown schema_version 9 for ad.clicks (known: [1])'
    """
    if not isinstance(record, Mapping):
        return f"expected a JSON object, got {type(record).__name__}"
    version = record.get("schema_version")
    if version not in known_versions(topic):
        return f"unknown schema_version {version!r} for {topic} (known: {known_versions(topic)})"
    for value in _numbers(record):
        if math.isnan(value) or math.isinf(value):
            return "non-finite number"
    error = next(iter(sorted(_validator(topic, version).iter_errors(record), key=lambda e: e.path)), None)
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path) or "record"
    return f"{where}: {error.message}"


def _numbers(value: Any):
    if isinstance(value, float):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)


def columns(topic: str, version: int = CURRENT_VERSION) -> list[Column]:
    """Top-level scalar columns of a topic's schema, typed for Flink SQL (arrays handled by the DDL)."""
    spec = schema(topic, version)
    required = set(spec["required"])
    out = []
    for name, prop in spec["properties"].items():
        json_type = prop.get("type", "integer" if "const" in prop else None)
        if json_type in _SQL_TYPES:
            out.append(Column(name, _SQL_TYPES[json_type], name in required))
    return out


def item_columns(topic: str, field: str, version: int = CURRENT_VERSION) -> str:
    """The fields of one element of the object array ``field`` of ``topic``, as ``name TYPE, ...``
    in schema order (an enum is a STRING): the ROW type that ADLOOP_PARSE gives each element.

    >>> item_columns("ad.impressions", "decisions")
    'agent STRING, action STRING, propensity DOUBLE, policy_version BIGINT'
    """
    items = schema(topic, version)["properties"][field]["items"]
    return ", ".join(
        f"{name} {_SQL_TYPES[prop.get('type', 'string')]}" for name, prop in items["properties"].items()
    )
