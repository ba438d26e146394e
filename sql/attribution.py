"""Flink SQL for attribution and per-agent rewards, generated from the attribution config.

Element shapes are noted after each view. All of it runs in the JVM; the only inputs are the
typed, deduplicated, on-time views of ``sql/ingest.py`` (``ontime_<stem>``).

- Click attribution: impressions and clicks meet, partitioned by impression_id, in
  ``ADLOOP_CLICK_OUTCOMES`` (udf/, a process table function): the first click to arrive inside the
  click window counts and is emitted at once; an impression without one gets a 0 outcome when the
  watermark passes the window end. (The same result as a LEFT interval join and a keep-first dedup
  per impression, with a third of the state accesses and no watermark hold-back.)
- Conversion attribution: touches (views and counted clicks) and conversions meet, partitioned
  by (user_id, campaign_id), in ``ADLOOP_ATTRIBUTE`` (udf/, a process table function): once the
  watermark reaches a conversion, its value is shared over the touches in the lookback, by
  time-decay weight ``boost * 2^(-Δt/half_life)`` normalised, or to the last touch. (An interval
  join would hold the watermark back by the whole 30-day lookback, and with it every
  event-time step after it: credit would come out a lookback after the conversion.)
"""

from __future__ import annotations

from attribution.config import AGENTS, AttributionConfig, RewardConfig
from contract import events
from sql import schema


def reward_expression(rewards: RewardConfig, click: str, credit: str, cost: str) -> str:
    """The configured reward per agent as one CASE over the ``agent`` column."""
    branches = []
    for agent in AGENTS:
        w = rewards.weights(agent)
        branches.append(
            f"WHEN '{agent}' THEN CAST({w.click!r} AS DOUBLE) * {click}"
            f" + CAST({w.credit!r} AS DOUBLE) * {credit} - CAST({w.cost!r} AS DOUBLE) * {cost}"
        )
    return "CASE agent " + " ".join(branches) + " END"


# A decision is a typed ROW (ADLOOP_PARSE); validation has checked every field. UNNEST gives each
# field a column of its own: agent, action, propensity, policy_version.
_DECISION_FIELDS = ", ".join(schema.columns(events.item_columns(events.IMPRESSIONS, "decisions")))


# One partition key for (user_id, campaign_id), unambiguous whatever the ids contain.
_PAIR_KEY = "CONCAT(CAST(CHAR_LENGTH(user_id) AS STRING), ':', user_id, campaign_id)"


def view_statements(cfg: AttributionConfig, rewards: RewardConfig) -> list[str]:
    statements = [
        # Impressions and clicks in one stream, for ADLOOP_CLICK_OUTCOMES (udf/, a process table function).
        f"""CREATE TEMPORARY VIEW IF NOT EXISTS click_events AS
SELECT impression_id, rowtime AS event_time, 0 AS is_click, ts, user_id, campaign_id, segment, win_price,
       features, decisions
FROM ontime_impressions
UNION ALL
SELECT impression_id, rowtime, 1, ts, CAST(NULL AS STRING), CAST(NULL AS STRING), CAST(NULL AS STRING),
       CAST(NULL AS DOUBLE), CAST(NULL AS ARRAY<DOUBLE>), CAST(NULL AS {schema.DECISIONS_TYPE})
FROM ontime_clicks""",
        # (impression..., click_ts or NULL, outcome_time): every impression once, with its first
        # in-window click; outcome_time is the click's (or, for a click that came first, the
        # impression's) time, or the window end for an impression without one.
        f"""CREATE TEMPORARY VIEW IF NOT EXISTS impression_outcomes AS
SELECT impression_id, ts, user_id, campaign_id, segment, win_price, features, decisions,
       click_ts, rowtime AS outcome_time
FROM ADLOOP_CLICK_OUTCOMES(
  TABLE click_events PARTITION BY impression_id,
  CAST({cfg.click_window_ms} AS BIGINT),  -- click_window_ms
  CAST({cfg.max_early_clicks} AS INT),  -- max_early_clicks
  DESCRIPTOR(event_time)  -- on_time
)""",
        # (decision_id, agent, ..., kind='initial', click, cost, reward, reward_time): one row per
        # decision; reward_time is the row's event-time attribute (the micro-batches' event clock).
        f"""CREATE TEMPORARY VIEW IF NOT EXISTS initial_rewards AS
SELECT CONCAT(impression_id, ':', agent) AS decision_id, impression_id, agent, campaign_id, segment, action,
       propensity, policy_version, features, 'initial' AS kind, CAST(NULL AS STRING) AS conversion_id,
       {reward_expression(rewards, "click", "0.0", "win_price")} AS reward,
       click, CAST(0.0 AS DOUBLE) AS credit, win_price AS cost, CAST(NULL AS DOUBLE) AS conversion_value,
       ts AS event_ts, reward_ts, outcome_time AS reward_time
FROM (
  SELECT o.*, d.*,
         CASE WHEN click_ts IS NULL THEN CAST(0.0 AS DOUBLE) ELSE CAST(1.0 AS DOUBLE) END AS click,
         COALESCE(click_ts, ts + {cfg.click_window_ms}) AS reward_ts
  FROM impression_outcomes o CROSS JOIN UNNEST(o.decisions) AS d ({_DECISION_FIELDS})
)""",
        # (impression_id, user_id, campaign_id, imp_ts, touch_ts, touch_time, is_click, features,
        # decisions): a view touch per impression, a click touch per counted click, each with what
        # its impression's delayed reward rows need (ADLOOP_ATTRIBUTE keeps it, typed, and no
        # payload). View touches come straight from the impressions: an unclicked impression
        # leaves the click function only when the watermark passes its window end, too late for a
        # conversion inside that window.
        """CREATE TEMPORARY VIEW IF NOT EXISTS touches AS
SELECT impression_id, user_id, campaign_id, segment, ts AS imp_ts, ts AS touch_ts, rowtime AS touch_time,
       0 AS is_click, features, decisions
FROM ontime_impressions
UNION ALL
SELECT impression_id, user_id, campaign_id, segment, ts AS imp_ts, click_ts AS touch_ts,
       outcome_time AS touch_time, 1 AS is_click, features, decisions
FROM impression_outcomes WHERE click_ts IS NOT NULL""",
        # Touches and conversions in one stream, for ADLOOP_ATTRIBUTE (udf/, a process table function).
        f"""CREATE TEMPORARY VIEW IF NOT EXISTS attribution_events AS
SELECT {_PAIR_KEY} AS pair_key, campaign_id, touch_time AS event_time,
       CAST(NULL AS STRING) AS conversion_id, impression_id, segment, imp_ts, touch_ts AS ts, is_click,
       features, decisions, CAST(NULL AS DOUBLE) AS conv_value
FROM touches
UNION ALL
SELECT {_PAIR_KEY}, campaign_id, rowtime, conversion_id, CAST(NULL AS STRING), CAST(NULL AS STRING),
       CAST(NULL AS BIGINT), ts, CAST(NULL AS INT), CAST(NULL AS ARRAY<DOUBLE>),
       CAST(NULL AS {schema.DECISIONS_TYPE}), `value`
FROM ontime_conversions""",
        # (conversion, impression, credit): a conversion's value shared over its touches in the
        # lookback once the watermark reaches it; a view and a click of one impression summed.
        f"""CREATE TEMPORARY VIEW IF NOT EXISTS impression_credits AS
SELECT conversion_id, impression_id, conv_ts, conv_value, campaign_id, segment, imp_ts, features, decisions,
       credit, rowtime AS credit_time
FROM ADLOOP_ATTRIBUTE(
  TABLE attribution_events PARTITION BY pair_key,
  CAST({cfg.lookback_ms} AS BIGINT),  -- lookback_ms
  CAST({cfg.half_life_ms} AS BIGINT),  -- half_life_ms
  CAST({cfg.click_boost!r} AS DOUBLE),  -- click_boost
  {"TRUE" if cfg.model == "last_touch" else "FALSE"},  -- last_touch
  CAST({cfg.max_touches} AS INT),  -- max_touches
  DESCRIPTOR(event_time)  -- on_time
)""",
        # (decision_id, agent, ..., kind='delayed', credit, reward): one row per decision.
        f"""CREATE TEMPORARY VIEW IF NOT EXISTS delayed_rewards AS
SELECT CONCAT(impression_id, ':', agent) AS decision_id, impression_id, agent, campaign_id, segment, action,
       propensity, policy_version, features, 'delayed' AS kind, conversion_id,
       {reward_expression(rewards, "0.0", "credit", "0.0")} AS reward,
       CAST(0.0 AS DOUBLE) AS click, credit, CAST(0.0 AS DOUBLE) AS cost, conv_value AS conversion_value,
       imp_ts AS event_ts, conv_ts AS reward_ts, credit_time AS reward_time
FROM (
  SELECT c.*, d.*
  FROM impression_credits c CROSS JOIN UNNEST(c.decisions) AS d ({_DECISION_FIELDS})
)""",
        """CREATE TEMPORARY VIEW IF NOT EXISTS rewards AS
SELECT * FROM initial_rewards UNION ALL SELECT * FROM delayed_rewards""",
    ]
    return statements
