"""The generated validation SQL (ADLOOP_PARSE under the contract's rules), run on the mini-cluster:
one reason per kind of bad payload."""

from __future__ import annotations

import json

from contract import events
from sql import ingest

GOOD_IMPRESSION = {
    "schema_version": 1,
    "event_id": "e1",
    "impression_id": "i1",
    "ts": 1_735_689_600_000,
    "user_id": "u1",
    "campaign_id": "c1",
    "segment": "s1",
    "creative_id": "cr1",
    "bid_price": 1.2,
    "win_price": 0.8,
    "features": [1.0, 0.5],
    "decisions": [
        {"agent": "creative", "action": "cr1", "propensity": 0.25, "policy_version": 3},
        {"agent": "bid", "action": "1.25", "propensity": 1, "policy_version": 3},
    ],
}


def _with(**changes) -> str:
    record = {**GOOD_IMPRESSION, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


def _decision(**changes) -> list[dict]:
    return [{**GOOD_IMPRESSION["decisions"][0], **changes}]


CASES = {
    "valid": (json.dumps(GOOD_IMPRESSION), None),
    "integer money is still a number": (_with(win_price=1), None),
    "not json": ('{"schema_version": 1, "event_id": ', "invalid_json"),
    "a json array": ("[1, 2]", "invalid_json"),
    "NaN money": (
        json.dumps(GOOD_IMPRESSION).replace('"win_price": 0.8', '"win_price": NaN'),
        "non_finite_number",
    ),
    "unknown version": (_with(schema_version=2), "unknown_schema_version"),
    "no version": (_with(schema_version=...), "unknown_schema_version"),
    "missing user": (_with(user_id=...), "missing_field:user_id"),
    "null user counts as missing": (_with(user_id=None), "missing_field:user_id"),
    "ts as string": (_with(ts="1735689600000"), "wrong_type:ts"),
    "ts fractional": (_with(ts=1.5), "wrong_type:ts"),
    "campaign as number": (_with(campaign_id=7), "wrong_type:campaign_id"),
    "negative cost": (_with(win_price=-0.01), "negative_value:win_price"),
    "features not numbers": (_with(features=["a", "b"]), "wrong_type:features"),
    "no decisions": (_with(decisions=[]), "missing_field:decisions"),
    "decision without propensity": (
        _with(decisions=[{"agent": "bid", "action": "1", "policy_version": 1}]),
        "missing_field:decisions.propensity",
    ),
    "propensity zero": (_with(decisions=_decision(propensity=0)), "propensity_out_of_range"),
    "propensity above one": (_with(decisions=_decision(propensity=1.01)), "propensity_out_of_range"),
    "far future": (_with(ts=4_102_444_800_000), "future_timestamp"),
    "trailing garbage": (json.dumps(GOOD_IMPRESSION) + " x", "invalid_json"),
    "version as string": (_with(schema_version="1"), "unknown_schema_version"),
    "empty user": (_with(user_id=""), "missing_field:user_id"),
    "negative ts": (_with(ts=-5), "negative_value:ts"),
    "unknown agent": (_with(decisions=_decision(agent="pricing")), "wrong_type:decisions.agent"),
    "decision version as string": (
        _with(decisions=_decision(policy_version="3")),
        "wrong_type:decisions.policy_version",
    ),
    "huge integer ts": (_with(ts=10**30), "wrong_type:ts"),
    # Hostile input: limits that keep a later operator from throwing or a row from outgrowing Kafka.
    "money beyond a double": (
        json.dumps(GOOD_IMPRESSION).replace('"win_price": 0.8', '"win_price": 1e400'),
        "non_finite_number",
    ),  # fmt: skip
    "money above the maximum": (_with(win_price=1e200), "win_price_out_of_range"),
    "feature beyond a double": (
        json.dumps(GOOD_IMPRESSION).replace("[1.0, 0.5]", "[1e999, 0.5]"),
        "non_finite_number",
    ),  # fmt: skip
    "feature above the maximum": (_with(features=[1e300, 0.5]), "features_out_of_range"),
    "features of another length": (_with(features=[1.0]), "wrong_length:features"),
    "5 decisions for 4 agents": (_with(decisions=_decision() * 5), "too_many_items:decisions"),
    "5,000 decisions": (_with(decisions=_decision() * 5000), "payload_too_large"),
    "one agent twice": (_with(decisions=_decision() + _decision(action="cr2")), "duplicate_agent:decisions"),
    "separator in a campaign": (_with(campaign_id="c|1"), "bad_id:campaign_id"),
    "colon in a user": (_with(user_id="u:1"), "bad_id:user_id"),
    "space in an action": (_with(decisions=_decision(action="cr 1")), "bad_id:decisions.action"),
    "id of 129 characters": (_with(impression_id="i" * 129), "too_long:impression_id"),
    "a key given twice": (json.dumps(GOOD_IMPRESSION)[:-1] + ', "ts": 5}', "duplicate_key"),
    "400 KB of control bytes": ("\x01" * 400_000, "payload_too_large"),
    "nesting 5,000 deep": ("[" * 5000 + "]" * 5000, "invalid_json"),
}

# The deployment's feature length for these cases (GOOD_IMPRESSION's).
LIMITS = ingest.ParseLimits(feature_dim=2)


def test_every_bad_payload_gets_its_reason(t_env):
    names = list(CASES)
    rows = [(CASES[n][0], "ad.impressions", 0, i) for i, n in enumerate(names)]
    t_env.create_temporary_view(
        "raw_elements", t_env.from_elements(rows, ["payload", "src_topic", "src_partition", "src_offset"])
    )
    # The columns a Kafka source adds: its record timestamp (written now), event and processing time.
    t_env.execute_sql("""CREATE TEMPORARY VIEW raw_probe AS
SELECT *, CURRENT_TIMESTAMP AS kafka_ts, CAST(NULL AS TIMESTAMP_LTZ(3)) AS rowtime, PROCTIME() AS proctime,
  CAST(NULL AS TIMESTAMP(3)) AS partition_time
FROM raw_elements""")
    for statement in ingest.function_statements():
        t_env.execute_sql(statement)
    t_env.execute_sql(ingest.checked_view_ddl(events.IMPRESSIONS, "raw_probe", 86_400_000, LIMITS))
    with t_env.execute_sql("SELECT src_offset, reason FROM checked_impressions").collect() as results:
        got = {names[row[0]]: row[1] for row in results}
    assert got == {name: reason for name, (_, reason) in CASES.items()}


# ADLOOP_EVENT_TIME(payload) feeds event time and the watermark before validation: a streaming
# JSON read that stops at the top-level ts: what follows it is never read, what comes before it
# must be well-formed.
EVENT_TIME_CASES = {
    "first field": ('{"ts": 5, "a": 1}', 5),
    "after containers, escapes and literals": (
        '{"d": [{"a": [1, {"b": null}], "c": "x\\"y\\u00e9"}], "f": [1.5e3, -2E-1], "ok": true, "ts": -42}',
        -42,
    ),
    "key spelled with an escape": ('{"t\\u0073": 7}', 7),
    "non-ASCII text before it": ('{"user": "élève", "ts": 3}', 3),
    "malformed after it": ('{"ts": 8, "x": }', 8),
    "first of two": ('{"ts": 1, "ts": 2}', 1),
    "smallest long": ('{"ts": -9223372036854775808}', -9223372036854775808),
    "malformed before it": ('{"x": tru, "ts": 8}', None),
    "fraction": ('{"ts": 1.5}', None),
    "exponent": ('{"ts": 1e3}', None),
    "string": ('{"ts": "12"}', None),
    "beyond a long": ('{"ts": 9223372036854775808}', None),
    "leading zero": ('{"ts": 012}', None),
    "missing": ('{"a": 1}', None),
    "only nested": ('{"a": {"ts": 5}}', None),
    "array": ("[1]", None),
    "truncated": ('{"a": [1, 2', None),
    "empty": ("", None),
}


def test_event_time_reads_the_top_level_ts_as_a_streaming_parser_does(t_env):
    names = list(EVENT_TIME_CASES)
    rows = [(i, EVENT_TIME_CASES[n][0]) for i, n in enumerate(names)]
    t_env.create_temporary_view("event_time_cases", t_env.from_elements(rows, ["id", "payload"]))
    for statement in ingest.function_statements():
        t_env.execute_sql(statement)
    query = "SELECT id, ADLOOP_EVENT_TIME(payload) FROM event_time_cases"
    with t_env.execute_sql(query).collect() as results:
        got = {names[row[0]]: row[1] for row in results}
    assert got == {name: value for name, (_, value) in EVENT_TIME_CASES.items()}
