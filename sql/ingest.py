"""Flink SQL for ingest, derived from the contract schemas: raw Kafka sources, validation, DLQ.

Every check a schema states (required fields, JSON types, minimums, the schema version, the
propensity range) becomes a CASE branch that yields a reason code, so parsing and validation run
in the JVM and a bad record becomes a dead-letter row instead of an exception.

Reason codes: ``invalid_json``, ``non_finite_number``, ``unknown_schema_version``,
``missing_field:<f>``, ``wrong_type:<f>``, ``negative_value:<f>``, ``propensity_out_of_range``,
``future_timestamp``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contract import events

# View name stem per topic.
STEMS = {events.IMPRESSIONS: "impressions", events.CLICKS: "clicks", events.CONVERSIONS: "conversions"}


@dataclass(frozen=True)
class KafkaTable:
    """Where a raw source table reads from; ``bounded`` stops at the offsets latest at start."""

    topic: str
    bootstrap_servers: str
    group_id: str
    startup_mode: str = "earliest-offset"
    bounded: bool = False


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


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def kafka_options(table: KafkaTable, fmt: str = "raw") -> str:
    options = {
        "connector": "kafka",
        "topic": table.topic,
        "properties.bootstrap.servers": table.bootstrap_servers,
        "properties.group.id": table.group_id,
        "scan.startup.mode": table.startup_mode,
        "format": fmt,
    }
    if table.bounded:
        options["scan.bounded.mode"] = "latest-offset"
    return ",\n  ".join(f"{_quote(k)} = {_quote(v)}" for k, v in options.items())


def _event_time(max_future_ms: int) -> str:
    """Event time of a payload. A missing, unparsable or implausibly future ``ts`` becomes epoch 0,
    so a bad record can never push the watermark ahead (it goes to the DLQ anyway)."""
    ts = "TO_TIMESTAMP_LTZ(TRY_CAST(JSON_VALUE(payload, '$.ts') AS BIGINT), 3)"
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


def _field_checks(name: str, prop: dict[str, Any], required: bool) -> list[tuple[str, str]]:
    """(condition, reason) pairs for one top-level property, in the order they are tested."""
    path = f"'$.{name}'"
    wrapped = f"JSON_QUERY(payload, {path} WITH CONDITIONAL ARRAY WRAPPER)"
    checks = []
    if required:
        checks.append((f"NOT JSON_EXISTS(payload, {path})", f"missing_field:{name}"))
    json_type = prop.get("type")
    if json_type == "string":
        checks.append((f"{wrapped} NOT LIKE '[\"%'", f"wrong_type:{name}"))
    elif json_type == "integer":
        checks.append((f"NOT REGEXP({wrapped}, '^\\[-?[0-9]+\\]$')", f"wrong_type:{name}"))
    elif json_type == "number":
        checks.append((f"NOT REGEXP({wrapped}, '^\\[-?[0-9][0-9.eE+-]*\\]$')", f"wrong_type:{name}"))
    elif json_type == "array":
        as_array = f"JSON_QUERY(payload, {path} RETURNING ARRAY<STRING>)"
        checks.append(
            (f"JSON_QUERY(payload, {path}) NOT LIKE '[%' OR {as_array} IS NULL", f"wrong_type:{name}")
        )
        if prop.get("items", {}).get("type") == "number":
            checks.append((f"TRY_CAST({as_array} AS ARRAY<DOUBLE>) IS NULL", f"wrong_type:{name}"))
        if prop.get("minItems"):
            checks.append((f"CARDINALITY({as_array}) < {prop['minItems']}", f"missing_field:{name}"))
    if "minimum" in prop and name != "ts":
        value = f"TRY_CAST(JSON_VALUE(payload, {path}) AS DOUBLE)"
        checks.append((f"{value} < {prop['minimum']}", f"negative_value:{name}"))
    return checks


def _decision_checks(prop: dict[str, Any]) -> list[tuple[str, str]]:
    """Checks over the decisions array: every element needs its fields and a propensity in (0, 1]."""
    count = "CARDINALITY(JSON_QUERY(payload, '$.decisions' RETURNING ARRAY<STRING>))"
    checks = []
    for field in prop["items"]["required"]:
        values = f"JSON_QUERY(payload, '$.decisions[*].{field}' RETURNING ARRAY<STRING>)"
        checks.append((f"COALESCE(CARDINALITY({values}), 0) <> {count}", f"missing_field:decisions.{field}"))
    propensities = (
        "TRY_CAST(JSON_QUERY(payload, '$.decisions[*].propensity' RETURNING ARRAY<STRING>) AS ARRAY<DOUBLE>)"
    )
    checks.append((f"{propensities} IS NULL", "wrong_type:decisions.propensity"))
    checks.append(
        (f"ARRAY_MIN({propensities}) <= 0 OR ARRAY_MAX({propensities}) > 1", "propensity_out_of_range")
    )
    return checks


def reason_expression(topic: str, max_future_ms: int) -> str:
    """A SQL CASE that is NULL for a valid payload of ``topic`` and a reason code otherwise."""
    spec = events.schema(topic)
    versions = ", ".join(_quote(str(v)) for v in events.known_versions(topic))
    branches = [
        ("payload IS NULL", "invalid_json"),
        # Flink's JSON parser rejects NaN/Infinity; name them instead of calling them invalid JSON.
        (
            "NOT (payload IS JSON OBJECT) AND REGEXP(payload, '[:,\\[]\\s*-?(NaN|Infinity)')",
            "non_finite_number",
        ),
        ("NOT (payload IS JSON OBJECT)", "invalid_json"),
        (
            f"COALESCE(JSON_VALUE(payload, '$.schema_version'), '') NOT IN ({versions})",
            "unknown_schema_version",
        ),
    ]
    required = set(spec["required"])
    for name, prop in spec["properties"].items():
        if name != "schema_version":
            branches.extend(_field_checks(name, prop, name in required))
        if name == "decisions":
            branches.extend(_decision_checks(prop))
    # Relative to the time the record was written to Kafka, so a replay judges it the same way.
    future = (
        f"TO_TIMESTAMP_LTZ(TRY_CAST(JSON_VALUE(payload, '$.ts') AS BIGINT), 3) > "
        f"TIMESTAMPADD(SECOND, {max_future_ms // 1000}, kafka_ts)"
    )
    branches.append((future, "future_timestamp"))
    body = "\n".join(f"    WHEN {cond} THEN {_quote(reason)}" for cond, reason in branches)
    return f"CASE\n{body}\n    ELSE CAST(NULL AS STRING)\n  END"


def checked_view_ddl(topic: str, raw_table: str, max_future_ms: int) -> str:
    """Raw rows with their reason code (NULL when valid)."""
    return f"""CREATE TEMPORARY VIEW IF NOT EXISTS checked_{STEMS[topic]} AS
SELECT payload, src_topic, src_partition, src_offset, rowtime, proctime,
  {reason_expression(topic, max_future_ms)} AS reason
FROM {raw_table}"""


def _typed_columns(topic: str) -> list[str]:
    cols = []
    for col in events.columns(topic):
        cols.append(f"TRY_CAST(JSON_VALUE(payload, '$.{col.name}') AS {col.sql_type}) AS `{col.name}`")
    spec = events.schema(topic)["properties"]
    if "features" in spec:
        cols.append(
            "TRY_CAST(JSON_QUERY(payload, '$.features' RETURNING ARRAY<STRING>) AS ARRAY<DOUBLE>) AS features"
        )
    if "decisions" in spec:
        cols.append("JSON_QUERY(payload, '$.decisions' RETURNING ARRAY<STRING>) AS decisions")
    return [*cols, "payload", "src_topic", "src_partition", "src_offset", "rowtime", "proctime"]


def valid_view_ddl(topic: str) -> str:
    """Typed rows of the valid payloads of ``topic``; decisions stay JSON strings per element."""
    select = ",\n  ".join(_typed_columns(topic))
    return f"""CREATE TEMPORARY VIEW IF NOT EXISTS valid_{STEMS[topic]} AS
SELECT
  {select}
FROM checked_{STEMS[topic]}
WHERE reason IS NULL"""


def late_split_ddl(topic: str) -> list[str]:
    """``late_<stem>``: valid rows already behind the watermark; ``ontime_<stem>``: the others,
    deduplicated by event_id (first arrival wins; state bounded by ``table.exec.state.ttl``).
    Conversions are also deduplicated by conversion_id."""
    stem = STEMS[topic]
    late = "rowtime <= CURRENT_WATERMARK(rowtime)"
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


def dlq_select(topic: str) -> str:
    """Dead-letter rows of ``topic``: the raw payload, the reason and where it was read."""
    return (
        f"SELECT payload, reason, src_topic, src_partition, src_offset "
        f"FROM checked_{STEMS[topic]} WHERE reason IS NOT NULL"
    )
