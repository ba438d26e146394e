"""The column lists shared by the job's SQL, its Java functions (udf/) and Python readers, each
defined once, as ``name TYPE, ...``.

``udf/src/main/java/adloop/udf/Schemas.java`` is rendered from this module
(``python -m sql.schema > udf/src/main/java/adloop/udf/Schemas.java``); a unit test fails when it
has drifted.
"""

from __future__ import annotations

import sys

from contract import events

# Dead letters: the payload (cut), its reason and where it was read.
DLQ_COLUMNS = """payload STRING, reason STRING, src_topic STRING, src_partition INT, src_offset BIGINT,
  payload_length INT"""

# Valid rows behind their partition's clock.
LATE_COLUMNS = """payload STRING, event_id STRING, ts BIGINT, src_topic STRING, src_partition INT,
  src_offset BIGINT"""

# One reward row per decision and outcome (the rewards topic and the Parquet table), after its
# ``schema_version INT``.
REWARD_SCHEMA_VERSION = 1
REWARD_COLUMNS = """decision_id STRING, impression_id STRING, agent STRING, campaign_id STRING,
  segment STRING, action STRING, propensity DOUBLE, policy_version BIGINT, features ARRAY<DOUBLE>,
  kind STRING, conversion_id STRING, reward DOUBLE, click DOUBLE, credit DOUBLE, cost DOUBLE,
  conversion_value DOUBLE, event_ts BIGINT, reward_ts BIGINT"""

# The fields of one arm in a micro-batch, in order (learners.batch.ArmStats, ADLOOP_ARM_STATS).
ARM_FIELDS = """state STRING, arm STRING, trials DOUBLE, reward_sum DOUBLE, reward_sq_sum DOUBLE,
  delayed_sum DOUBLE, ipw_reward_sum DOUBLE, cost_sum DOUBLE, wins DOUBLE, xx ARRAY<DOUBLE>,
  rx ARRAY<DOUBLE>"""

# One row per (micro-batch, campaign, agent), its arms nested, and the sampled feature vectors of
# the agents that read them (the segment agent; NULL for the others): what a learner saw.
BATCH_COLUMNS = f"""window_end STRING, event_time BIGINT, campaign_id STRING, agent STRING,
  arms ARRAY<ROW<{ARM_FIELDS}>>, samples ARRAY<ARRAY<DOUBLE>>"""

# One row per reward drift a learner detected (learners/drift.py): its key, the version the
# discounted learner took, the event time of the micro-batch, the key's drifts so far, and when.
DRIFT_COLUMNS = """campaign_id STRING, agent STRING, version BIGINT, event_time BIGINT, drifts BIGINT,
  detected_at_ms BIGINT"""

# One row per publish of the learners (operators/learner_operator.py, OUTPUT_TYPE): whether Redis
# took it, the outcome (written, stale, pending, pinned, adopt), when (epoch ms), and the params.
POLICY_UPDATE_COLUMNS = """campaign_id STRING, agent STRING, version BIGINT, published BOOLEAN,
  pending BIGINT, outcome STRING, updated_at BIGINT, params STRING"""

# An impression's decisions, one typed ROW each (ADLOOP_PARSE), from the contract schema.
DECISIONS_TYPE = f"ARRAY<ROW<{events.item_columns(events.IMPRESSIONS, 'decisions')}>>"

# ADLOOP_CLICK_OUTCOMES: its input (the view click_events) and its output.
CLICK_EVENTS_COLUMNS = f"""impression_id STRING, event_time TIMESTAMP_LTZ(3), is_click INT, ts BIGINT,
  user_id STRING, campaign_id STRING, segment STRING, win_price DOUBLE, features ARRAY<DOUBLE>,
  decisions {DECISIONS_TYPE}"""
CLICK_OUTCOME_COLUMNS = f"""ts BIGINT, user_id STRING, campaign_id STRING, segment STRING,
  win_price DOUBLE, features ARRAY<DOUBLE>, decisions {DECISIONS_TYPE}, click_ts BIGINT"""

# ADLOOP_ATTRIBUTE: its input (the view attribution_events), a touch as it keeps it in state, and
# its output. A touch carries what the delayed reward rows of its impression need, typed, and no
# payload.
ATTRIBUTION_EVENTS_COLUMNS = f"""pair_key STRING, campaign_id STRING, event_time TIMESTAMP_LTZ(3),
  conversion_id STRING, impression_id STRING, segment STRING, imp_ts BIGINT, ts BIGINT, is_click INT,
  features ARRAY<DOUBLE>, decisions {DECISIONS_TYPE}, conv_value DOUBLE"""
TOUCH_FIELDS = f"""impression_id STRING, segment STRING, imp_ts BIGINT, touch_ts BIGINT, is_click INT,
  features ARRAY<DOUBLE>, decisions {DECISIONS_TYPE}"""
CREDIT_COLUMNS = f"""conversion_id STRING, campaign_id STRING, impression_id STRING, segment STRING,
  imp_ts BIGINT, conv_ts BIGINT, conv_value DOUBLE, credit DOUBLE, features ARRAY<DOUBLE>,
  decisions {DECISIONS_TYPE}"""


def columns(spec: str) -> dict[str, str]:
    """``name TYPE, ...`` as {name: type}, in order; commas inside ``<>`` or ``()`` belong to the type.

    >>> columns("a STRING, m MAP<STRING, DOUBLE>, t TIMESTAMP_LTZ(3)")
    {'a': 'STRING', 'm': 'MAP<STRING, DOUBLE>', 't': 'TIMESTAMP_LTZ(3)'}
    """
    parts, depth, start = [], 0, 0
    text = " ".join(spec.split())
    for i, char in enumerate(text):
        depth += (char in "<(") - (char in ">)")
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return dict(part.strip().split(None, 1) for part in parts)


def row_type(spec: str) -> str:
    """``spec`` as one SQL ROW type on one line.

    >>> row_type("a STRING, xs ARRAY<DOUBLE>")
    'ROW<a STRING, xs ARRAY<DOUBLE>>'
    """
    return "ROW<" + ", ".join(f"{n} {t}" for n, t in columns(spec).items()) + ">"


# The constants of Schemas.java: name -> SQL type.
JAVA_CONSTANTS = {
    "CLICK_EVENTS": row_type(CLICK_EVENTS_COLUMNS),
    "CLICK_OUTCOME": row_type(CLICK_OUTCOME_COLUMNS),
    "ATTRIBUTION_EVENTS": row_type(ATTRIBUTION_EVENTS_COLUMNS),
    "TOUCHES": f"ARRAY<{row_type(TOUCH_FIELDS)}>",
    "CREDIT": row_type(CREDIT_COLUMNS),
    "ARMS": f"ARRAY<{row_type(ARM_FIELDS)}>",
}


def java_source() -> str:
    """``Schemas.java``: the column lists the Java functions share with the SQL, as constants."""
    lines = [
        "package adloop.udf;",
        "",
        "/** Rendered by {@code python -m sql.schema} from sql/schema.py; do not edit. */",
        "public final class Schemas {",
        "    private Schemas() {}",
    ]
    for name, sql_type in JAVA_CONSTANTS.items():
        lines += ["", f'    public static final String {name} =\n            "{sql_type}";']
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(java_source())
