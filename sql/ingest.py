"""Flink SQL for ingest, derived from the contract schemas: raw Kafka sources, validation, DLQ.

Every check a schema states (required fields, JSON types, minimums, the schema version, the
propensity range) becomes a rule of ``ADLOOP_PARSE`` (udf/, Java), which parses each payload once
in the JVM and yields a reason code, so a bad record becomes a dead-letter row instead of an
exception. (Flink's JSON_VALUE re-parses the payload per path: ~50 paths made validation the
job's bottleneck.)

Reason codes: ``invalid_json``, ``duplicate_key``, ``payload_too_large``, ``non_finite_number``
(NaN, Infinity, or a number beyond a double such as ``1e400``), ``unknown_schema_version``,
``missing_field:<f>``, ``wrong_type:<f>``, ``negative_value:<f>``, ``<f>_out_of_range`` (a
propensity outside (0, 1], a price or value above ``ingest.max_amount``, a feature beyond
``ingest.max_feature_abs``), ``wrong_length:features`` (not ``batches.feature_dim`` numbers),
``too_many_items:decisions`` and ``duplicate_agent:decisions`` (at most one decision per agent),
``too_long:<f>`` and ``bad_id:<f>`` (ids: at most 128 of ``A-Za-z0-9._-``), ``future_timestamp``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from contract import events

# View name stem per topic.
STEMS = {
    events.IMPRESSIONS: "impressions",
    events.CLICKS: "clicks",
    events.CONVERSIONS: "conversions",
    events.AUCTIONS: "auctions",
}

# SQL name -> class of the project's JVM functions (udf/).
FUNCTIONS = {
    "ADLOOP_PARSE": "adloop.udf.ParseEvent",
    "ADLOOP_EVENT_TIME": "adloop.udf.EventTime",
    "ADLOOP_CLICK_OUTCOMES": "adloop.udf.ClickOutcomes",
    "ADLOOP_ATTRIBUTE": "adloop.udf.AttributeConversions",
    "ADLOOP_ARM_STATS": "adloop.udf.ArmStats",
    "ADLOOP_COUNTED": "adloop.udf.CountRows",
}


@dataclass(frozen=True)
class KafkaTable:
    """Where a raw source table reads from; ``bounded`` stops at the offsets latest at start."""

    topic: str
    bootstrap_servers: str
    group_id: str
    startup_mode: str = "earliest-offset"
    bounded: bool = False
    # Client properties as table options (``properties.security.protocol`` ...), secrets resolved.
    client_options: tuple[tuple[str, str], ...] = ()


def interval(ms: int) -> str:
    """A day-time interval literal of ``ms`` milliseconds (Flink caps SECOND's leading precision).

    >>> interval(30 * 86_400_000 + 3_600_000 + 1)
    "INTERVAL '30 01:00:00.001' DAY(3) TO SECOND(3)"
    """
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}' DAY(3) TO SECOND(3)"


def quote(text: str) -> str:
    """A SQL string literal.

    >>> quote("it's")
    "'it''s'"
    """
    return "'" + text.replace("'", "''") + "'"


def kafka_options(table: KafkaTable, fmt: str = "raw") -> str:
    options = {
        "connector": "kafka",
        "topic": table.topic,
        "properties.bootstrap.servers": table.bootstrap_servers,
        "properties.group.id": table.group_id,
        "scan.startup.mode": table.startup_mode,
        # Only committed records: the project's topics are written by transactions.
        "properties.isolation.level": "read_committed",
        "format": fmt,
        **dict(table.client_options),
    }
    if table.bounded:
        options["scan.bounded.mode"] = "latest-offset"
    return ",\n  ".join(f"{quote(k)} = {quote(v)}" for k, v in options.items())


def function_statements() -> list[str]:
    """The project's JVM functions (``udf/``, built into the jar directory by scripts/setup.sh)."""
    return [
        f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS {name} AS '{cls}' LANGUAGE JAVA"
        for name, cls in FUNCTIONS.items()
    ]


def _event_time(max_future_ms: int) -> str:
    """Event time of a payload. A missing, unparsable or implausibly future ``ts`` becomes epoch 0,
    so a bad record can never push the watermark ahead (it goes to the DLQ anyway)."""
    ts = "TO_TIMESTAMP_LTZ(ADLOOP_EVENT_TIME(payload), 3)"
    return (
        f"CASE WHEN {ts} <= TIMESTAMPADD(SECOND, {max_future_ms // 1000}, kafka_ts) THEN {ts} "
        "ELSE TO_TIMESTAMP_LTZ(0, 3) END"
    )


def raw_source_ddl(
    name: str, table: KafkaTable, out_of_orderness_ms: int = 60_000, max_future_ms: int = 86_400_000
) -> str:
    """A Kafka table of raw payloads with their coordinates (for the DLQ) and event time."""
    return f"""CREATE TABLE IF NOT EXISTS {name} (
  payload STRING,
  src_topic STRING METADATA FROM 'topic' VIRTUAL,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  proctime AS PROCTIME(),
  rowtime AS {_event_time(max_future_ms)},
  WATERMARK FOR rowtime AS rowtime - {interval(out_of_orderness_ms)}
) WITH (
  {kafka_options(table)}
)"""


@dataclass(frozen=True)
class ParseLimits:
    """Bounds ADLOOP_PARSE applies beyond the schema's, from the config (``ingest.*``): whatever
    passes them cannot overflow a sum or a learner's statistics downstream."""

    max_payload_bytes: int = 65_536
    max_amount: float = 1_000_000  # prices and values (currency units)
    feature_dim: int | None = None  # exact length of ``features`` (None: any)
    max_feature_abs: float = 1_000_000


def _field_rules(name: str, prop: dict[str, Any], required: set[str], limits: ParseLimits) -> dict[str, Any]:
    """One schema property as an ADLOOP_PARSE rule (see udf/.../ParseEvent.java)."""
    rule: dict[str, Any] = {"name": name, "type": prop.get("type", "string"), "required": name in required}
    if "enum" in prop:
        rule.update(type="string", enum=prop["enum"])
    for key, out in (
        ("minLength", "min_length"),
        ("maxLength", "max_length"),
        ("pattern", "pattern"),
        ("minimum", "minimum"),
        ("exclusiveMinimum", "exclusive_minimum"),
        ("maximum", "maximum"),
        ("minItems", "min_items"),
        ("maxItems", "max_items"),
        ("x-unique-by", "unique_by"),
    ):
        if key in prop:
            rule[out] = prop[key]
    if rule["type"] == "number" and "maximum" not in rule:
        rule["maximum"] = limits.max_amount
    items = prop.get("items")
    if items is not None:
        rule["items"] = items.get("type", "object")
        if rule["items"] == "object":
            sub_required = set(items.get("required", ()))
            rule["fields"] = [
                _field_rules(n, p, sub_required, limits) for n, p in items["properties"].items()
            ]
            unique = items["properties"].get(rule.get("unique_by", ""), {})
            if "enum" in unique and "max_items" not in rule:
                rule["max_items"] = len(unique["enum"])  # one element per allowed value at most
        elif name == "features":
            rule["maximum"] = limits.max_feature_abs
            if limits.feature_dim is not None:
                rule["length"] = limits.feature_dim
    return rule


def rules(topic: str, limits: ParseLimits | None = None) -> str:
    """The validation rules of ``topic`` for ADLOOP_PARSE, derived from its JSON schema: every
    property in schema order with its type, whether it is required, and its bounds; and the
    config's limits (payload size, magnitudes, feature length).

    >>> json.loads(rules("ad.clicks"))["fields"][2]
    {'name': 'ts', 'type': 'integer', 'required': True, 'minimum': 0}
    >>> json.loads(rules("ad.clicks"))["max_bytes"]
    65536
    """
    limits = limits or ParseLimits()
    spec = events.schema(topic)
    required = set(spec["required"])
    fields = [
        _field_rules(n, p, required, limits) for n, p in spec["properties"].items() if n != "schema_version"
    ]
    out = {"versions": events.known_versions(topic), "fields": fields, "max_bytes": limits.max_payload_bytes}
    return json.dumps(out, separators=(",", ":"))


def parse_expression(topic: str, column: str = "payload", limits: ParseLimits | None = None) -> str:
    """``ADLOOP_PARSE`` of ``column`` under ``topic``'s rules, one JSON parse per record: a row of
    ``reason``, ``schema_version`` and the topic's fields, typed (udf/.../ParseEvent.java)."""
    return f"ADLOOP_PARSE({column}, {quote(rules(topic, limits))})"


def reason_expression(max_future_ms: int) -> str:
    """NULL for a valid payload, else its reason code: ADLOOP_PARSE's, or ``future_timestamp``
    relative to the time the record was written to Kafka (so a replay judges it the same way)."""
    future = f"TO_TIMESTAMP_LTZ(parsed.ts, 3) > TIMESTAMPADD(SECOND, {max_future_ms // 1000}, kafka_ts)"
    return (
        "CASE WHEN parsed.reason IS NOT NULL THEN parsed.reason\n"
        f"    WHEN {future} THEN 'future_timestamp'\n    ELSE CAST(NULL AS STRING) END"
    )


def checked_view_ddl(
    topic: str, raw_table: str, max_future_ms: int, limits: ParseLimits | None = None
) -> str:
    """Raw rows (with their partition's clock, ``partition_clock_ddl``) with their reason code
    (NULL when valid) and the parsed payload."""
    return f"""CREATE TEMPORARY VIEW IF NOT EXISTS checked_{STEMS[topic]} AS
SELECT payload, src_topic, src_partition, src_offset, rowtime, proctime, partition_time,
  {reason_expression(max_future_ms)} AS reason,
  parsed
FROM (SELECT *, {parse_expression(topic, limits=limits)} AS parsed FROM {raw_table})"""


def _typed_columns(topic: str) -> list[str]:
    cols = []
    for col in events.columns(topic):
        cols.append(f"CAST(parsed.`{col.name}` AS {col.sql_type}) AS `{col.name}`")
    spec = events.schema(topic)["properties"]
    for name, prop in spec.items():
        if prop.get("type") == "array":
            cols.append(f"parsed.`{name}` AS `{name}`")
    return [
        *cols,
        "payload",
        "src_topic",
        "src_partition",
        "src_offset",
        "rowtime",
        "proctime",
        "partition_time",
    ]


def valid_view_ddl(topic: str) -> str:
    """Typed rows of the valid payloads of ``topic``; each decision is a MAP of canonical strings."""
    select = ",\n  ".join(_typed_columns(topic))
    return f"""CREATE TEMPORARY VIEW IF NOT EXISTS valid_{STEMS[topic]} AS
SELECT
  {select}
FROM checked_{STEMS[topic]}
WHERE reason IS NULL"""


def partition_clock_ddl(topic: str, raw_table: str) -> str:
    """``clocked_<stem>``: the raw rows, each with ``partition_time``, the latest event time of its
    Kafka partition so far, itself included: a running maximum per partition, in the partition's
    offset order (one source subtask reads a partition, and a keyed exchange keeps the order of
    each sender), kept in keyed state that a checkpoint stores together with the source offsets.
    It counts the same event time as the watermark does (``rowtime``, invalid payloads' included),
    so a row ahead of its own partition's clock is ahead of every watermark downstream."""
    stem = STEMS[topic]
    return f"""CREATE TEMPORARY VIEW IF NOT EXISTS clocked_{stem} AS
SELECT *, MAX(CAST(rowtime AS TIMESTAMP(3))) OVER (
  PARTITION BY src_partition ORDER BY proctime ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
) AS partition_time
FROM {raw_table}"""


def late_split_ddl(topic: str, out_of_orderness_ms: int = 60_000) -> list[str]:
    """``late_<stem>``: valid rows more than ``out_of_orderness_ms`` behind their own partition's
    clock (``partition_clock_ddl``), so late or on time is decided by the partition's contents in
    its order, the same in every run, at any parallelism and after a restore. Rows behind the
    operator's watermark are late too: that happens only when a partition was taken as idle
    (``table.exec.source.idle-timeout``) and the watermark moved on without it.
    ``ontime_<stem>``: the others, deduplicated by event_id (first in partition order wins;
    duplicates share the record key, hence the partition; state bounded by
    ``table.exec.state.ttl``). Conversions are also deduplicated by conversion_id."""
    stem = STEMS[topic]
    late = (
        f"(CAST(rowtime AS TIMESTAMP(3)) <= partition_time - {interval(out_of_orderness_ms)}"
        " OR rowtime <= CURRENT_WATERMARK(rowtime))"
    )
    dedup = f"""SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proctime ASC) AS event_rank
  FROM valid_{stem} WHERE NOT COALESCE({late}, FALSE)
) WHERE event_rank = 1"""
    if topic == events.CONVERSIONS:
        dedup = f"""SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY conversion_id ORDER BY proctime ASC) AS conversion_rank
  FROM ({dedup})
) WHERE conversion_rank = 1"""
    return [
        f"CREATE TEMPORARY VIEW IF NOT EXISTS late_{stem} AS SELECT * FROM valid_{stem} WHERE {late}",
        f"CREATE TEMPORARY VIEW IF NOT EXISTS ontime_{stem} AS {dedup}",
    ]


def counted(column: str, metric: str) -> str:
    """``column`` unchanged, each row counted in the Flink counter ``adloop.<metric>``.

    >>> counted("payload", "dlq_records")
    "ADLOOP_COUNTED(payload, 'dlq_records') AS payload"
    """
    return f"ADLOOP_COUNTED({column}, {quote(metric)}) AS {column}"


def dlq_select(topic: str, payload_chars: int = 4096) -> str:
    """Dead-letter rows of ``topic``: the raw payload (cut to its first ``payload_chars``
    characters, its full length in ``payload_length``, so one huge record cannot exceed a Kafka
    message), the reason and where it was read; each one counted in ``adloop.dlq_records``."""
    cut = (
        f"CASE WHEN CHAR_LENGTH(payload) > {payload_chars} "
        f"THEN SUBSTRING(payload FROM 1 FOR {payload_chars}) ELSE payload END"
    )
    return (
        f"SELECT ADLOOP_COUNTED({cut}, 'dlq_records') AS payload, reason, src_topic, src_partition, "
        f"src_offset, CHAR_LENGTH(payload) AS payload_length "
        f"FROM checked_{STEMS[topic]} WHERE reason IS NOT NULL"
    )
