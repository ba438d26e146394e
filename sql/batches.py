"""Flink SQL for the learners' micro-batches: sufficient statistics per key, in the JVM.

One row per (micro-batch window, campaign_id, agent, state, arm), matching
``learners.batch.ArmStats``. Windows run on processing time: a micro-batch is what arrived in the
last ``interval_ms``, so initial rewards (emitted at window close) and delayed credit (emitted
days later) both reach the learners as soon as they exist.
"""

from __future__ import annotations

from sql.ingest import interval


def _sum(expr: str) -> str:
    # DOUBLE throughout: a DECIMAL literal would make the column DECIMAL, which the conversion to
    # the learners' DataStream does not take.
    return f"CAST(COALESCE(SUM(CAST({expr} AS DOUBLE)), 0) AS DOUBLE)"


def batches_views(
    interval_ms: int, feature_dim: int, n_blocks: int = 24, source: str = "rewards"
) -> list[str]:
    """``learner_batches``: window_end (processing time), event_time (latest reward_ts, ms, for
    learners that discount by event time), campaign_id, agent, state, arm and the ArmStats sums.

    ``state`` is ``""`` for the creative agent and ``"<block>|<segment>"`` (block of the UTC day
    of the impression) for the bid and budget agents.
    """
    initial = "kind = 'initial'"
    xx = ", ".join(
        _sum(f"CASE WHEN {initial} THEN features[{i}] * features[{j}] END")
        for i in range(1, feature_dim + 1)
        for j in range(1, feature_dim + 1)
    )
    rx = ", ".join(_sum(f"reward * features[{i}]") for i in range(1, feature_dim + 1))
    block_ms = 86_400_000 // n_blocks
    keyed = f"""CREATE TEMPORARY VIEW IF NOT EXISTS keyed_rewards AS
SELECT *, action AS arm, PROCTIME() AS arrived,
       CASE WHEN agent = 'creative' THEN ''
            ELSE CONCAT(CAST(MOD(event_ts, 86400000) / {block_ms} AS STRING), '|', segment) END AS state
FROM {source}"""
    batches = f"""CREATE TEMPORARY VIEW IF NOT EXISTS learner_batches AS
SELECT CAST(window_end AS STRING) AS window_end, MAX(reward_ts) AS event_time, campaign_id, agent, state, arm,
  {_sum(f"CASE WHEN {initial} THEN 1.0 END")} AS trials,
  {_sum(f"CASE WHEN {initial} THEN reward END")} AS reward_sum,
  {_sum(f"CASE WHEN {initial} THEN reward * reward END")} AS reward_sq_sum,
  {_sum("CASE WHEN kind = 'delayed' THEN reward END")} AS delayed_sum,
  {_sum("reward / propensity")} AS ipw_reward_sum,
  {_sum("cost")} AS cost_sum,
  {_sum(f"CASE WHEN {initial} THEN 1.0 END")} AS wins,
  ARRAY[{xx}] AS xx,
  ARRAY[{rx}] AS rx
FROM TABLE(TUMBLE(TABLE keyed_rewards, DESCRIPTOR(arrived), {interval(interval_ms)}))
GROUP BY window_start, window_end, campaign_id, agent, state, arm"""
    return [keyed, batches]
