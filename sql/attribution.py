"""Flink SQL for attribution and per-agent rewards, generated from the attribution config.

Element shapes are noted after each view. All of it runs in the JVM; the only inputs are the
typed, deduplicated, on-time views of ``sql/ingest.py`` (``ontime_<stem>``).

- Click attribution: impression LEFT interval-join click on impression_id within the click window;
  the first click to arrive inside the window counts (proc-time keep-first per impression), an
  impression without one gets a 0 outcome when the watermark passes the window end.
- Conversion attribution: conversion interval-join touches (views and counted clicks) on
  (user_id, campaign_id) within the lookback; time-decay weight ``boost * 2^(-Δt/half_life)`` or
  last touch; credit normalised per conversion with an event-time OVER window whose RANGE of 0
  holds exactly the conversion's own touches (they share its rowtime).
"""

from __future__ import annotations

from attribution.config import AGENTS, AttributionConfig, RewardConfig
from contract import events
from sql.ingest import interval, parse_expression


def _reward_expression(rewards: RewardConfig, click: str, credit: str, cost: str) -> str:
    """The configured reward per agent as one CASE over the ``agent`` column."""
    branches = []
    for agent in AGENTS:
        w = rewards.weights(agent)
        branches.append(
            f"WHEN '{agent}' THEN CAST({w.click!r} AS DOUBLE) * {click}"
            f" + CAST({w.credit!r} AS DOUBLE) * {credit} - CAST({w.cost!r} AS DOUBLE) * {cost}"
        )
    return "CASE agent " + " ".join(branches) + " END"


# A decision is a MAP of canonical strings (sql/ingest.py); validation has checked every field.
_DECISION_COLUMNS = """decision['agent'] AS agent,
    decision['action'] AS action,
    CAST(decision['propensity'] AS DOUBLE) AS propensity,
    CAST(decision['policy_version'] AS BIGINT) AS policy_version"""


def view_statements(cfg: AttributionConfig, rewards: RewardConfig) -> list[str]:
    model_weight = (
        f"POWER(CAST(2 AS DOUBLE), -CAST(conv_ts - touch_ts AS DOUBLE) / {cfg.half_life_ms})"
        f" * CASE WHEN is_click = 1 THEN CAST({cfg.click_boost!r} AS DOUBLE) ELSE 1.0 END"
    )
    statements = [
        # (impression..., click_ts or NULL): every impression once, with its first in-window click.
        f"""CREATE TEMPORARY VIEW IF NOT EXISTS impression_outcomes AS
SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY impression_id ORDER BY joined_at ASC) AS rn
  FROM (
    SELECT i.impression_id, i.ts, i.rowtime, i.user_id, i.campaign_id, i.segment, i.win_price,
           i.features, i.decisions, i.payload AS imp_payload, c.ts AS click_ts, c.rowtime AS click_time,
           PROCTIME() AS joined_at
    FROM ontime_impressions i LEFT JOIN ontime_clicks c
      ON i.impression_id = c.impression_id
     AND c.rowtime BETWEEN i.rowtime AND i.rowtime + {interval(cfg.click_window_ms)}
  )
) WHERE rn = 1""",
        # (decision_id, agent, ..., kind='initial', click, cost, reward): one row per decision.
        f"""CREATE TEMPORARY VIEW IF NOT EXISTS initial_rewards AS
SELECT CONCAT(impression_id, ':', agent) AS decision_id, impression_id, agent, campaign_id, segment, action,
       propensity, policy_version, features, 'initial' AS kind, CAST(NULL AS STRING) AS conversion_id,
       {_reward_expression(rewards, "click", "0.0", "win_price")} AS reward,
       click, CAST(0.0 AS DOUBLE) AS credit, win_price AS cost, CAST(NULL AS DOUBLE) AS conversion_value,
       ts AS event_ts, reward_ts
FROM (
  SELECT o.*, {_DECISION_COLUMNS},
         CASE WHEN click_ts IS NULL THEN CAST(0.0 AS DOUBLE) ELSE CAST(1.0 AS DOUBLE) END AS click,
         COALESCE(click_ts, ts + {cfg.click_window_ms}) AS reward_ts
  FROM impression_outcomes o CROSS JOIN UNNEST(o.decisions) AS d (decision)
)""",
        # (impression_id, user_id, campaign_id, imp_ts, touch_ts, touch_time, is_click, imp_payload):
        # a view touch per impression, a click touch per counted click.
        """CREATE TEMPORARY VIEW IF NOT EXISTS touches AS
SELECT impression_id, user_id, campaign_id, segment, ts AS imp_ts, ts AS touch_ts, rowtime AS touch_time,
       0 AS is_click, payload AS imp_payload
FROM ontime_impressions
UNION ALL
SELECT impression_id, user_id, campaign_id, segment, ts AS imp_ts, click_ts AS touch_ts,
       click_time AS touch_time, 1 AS is_click, imp_payload
FROM impression_outcomes WHERE click_ts IS NOT NULL""",
        # (conversion, touch, weight): every touch of the same user and campaign in the lookback.
        f"""CREATE TEMPORARY VIEW IF NOT EXISTS conversion_touches AS
SELECT v.conversion_id, v.ts AS conv_ts, v.rowtime AS conv_time, v.`value` AS conv_value,
       t.impression_id, t.campaign_id, t.segment, t.imp_ts, t.touch_ts, t.is_click, t.imp_payload
FROM ontime_conversions v JOIN touches t
  ON v.user_id = t.user_id AND v.campaign_id = t.campaign_id
 AND t.touch_time BETWEEN v.rowtime - {interval(cfg.lookback_ms)} AND v.rowtime""",
        # (conversion, touch, credit): credits normalised over the conversion's touches.
        f"""CREATE TEMPORARY VIEW IF NOT EXISTS touch_credits AS
SELECT conversion_id, conv_ts, conv_time, conv_value, impression_id, campaign_id, segment, imp_payload,
       imp_ts, {_credit_expression(cfg)} AS credit, {_counted_expression(cfg)} AS counted
FROM (
  SELECT *, {model_weight} AS w,
         CONCAT(LPAD(CAST(touch_ts * 2 + is_click AS STRING), 20, '0'), impression_id) AS touch_key
  FROM conversion_touches
)
WINDOW conv AS (PARTITION BY conversion_id ORDER BY conv_time RANGE BETWEEN INTERVAL '0' SECOND PRECEDING
                AND CURRENT ROW)""",
        "CREATE TEMPORARY VIEW IF NOT EXISTS counted_touch_credits AS "
        "SELECT * FROM touch_credits WHERE counted",
        # (conversion, impression, credit): a view and a click touch of one impression summed.
        """CREATE TEMPORARY VIEW IF NOT EXISTS impression_credits AS
SELECT conversion_id, impression_id, MAX(conv_ts) AS conv_ts, MAX(conv_value) AS conv_value,
       MAX(campaign_id) AS campaign_id, MAX(segment) AS segment, MAX(imp_ts) AS imp_ts,
       MAX(imp_payload) AS imp_payload,
       SUM(credit) AS credit, window_time AS conv_time
FROM TABLE(TUMBLE(TABLE counted_touch_credits, DESCRIPTOR(conv_time), INTERVAL '1' SECOND))
GROUP BY window_start, window_end, window_time, conversion_id, impression_id""",
        # (decision_id, agent, ..., kind='delayed', credit, reward): one row per decision.
        # Decisions and features are re-read from the impression's payload (one parse per
        # attributed impression, a rare row): arrays cannot pass through the GROUP BY above.
        f"""CREATE TEMPORARY VIEW IF NOT EXISTS delayed_rewards AS
SELECT CONCAT(impression_id, ':', agent) AS decision_id, impression_id, agent, campaign_id, segment, action,
       propensity, policy_version, features, 'delayed' AS kind, conversion_id,
       {_reward_expression(rewards, "0.0", "credit", "0.0")} AS reward,
       CAST(0.0 AS DOUBLE) AS click, credit, CAST(0.0 AS DOUBLE) AS cost, conv_value AS conversion_value,
       imp_ts AS event_ts, conv_ts AS reward_ts
FROM (
  SELECT c.*, {_DECISION_COLUMNS}, c.parsed.number_arrays['features'] AS features
  FROM (SELECT *, {parse_expression(events.IMPRESSIONS, "imp_payload")} AS parsed FROM impression_credits) c
  CROSS JOIN UNNEST(c.parsed.object_arrays['decisions']) AS d (decision)
)""",
        """CREATE TEMPORARY VIEW IF NOT EXISTS rewards AS
SELECT * FROM initial_rewards UNION ALL SELECT * FROM delayed_rewards""",
    ]
    return statements


def _counted_expression(cfg: AttributionConfig) -> str:
    """Which touches yield rows: all of them under time decay, only the winner under last touch."""
    if cfg.model == "last_touch":
        return "touch_key = MAX(touch_key) OVER conv"
    return "TRUE"


def _credit_expression(cfg: AttributionConfig) -> str:
    if cfg.model == "last_touch":
        return "CASE WHEN touch_key = MAX(touch_key) OVER conv THEN conv_value ELSE CAST(0.0 AS DOUBLE) END"
    return "conv_value * w / SUM(w) OVER conv"
