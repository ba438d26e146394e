"""Flink SQL for the learners' micro-batches: sufficient statistics per key, in the JVM.

One row per (micro-batch window, campaign_id, agent, state, arm), matching
``learners.batch.ArmStats``. Windows run on processing time: a micro-batch is what arrived in the
last ``interval_ms``, so initial rewards (emitted at window close) and delayed credit (emitted
days later) both reach the learners as soon as they exist.
"""

from __future__ import annotations

from collections.abc import Sequence

from sql.ingest import interval


def _sum(expr: str) -> str:
    # DOUBLE throughout: a DECIMAL literal would make the column DECIMAL, which the conversion to
    # the learners' DataStream does not take.
    return f"CAST(COALESCE(SUM(CAST({expr} AS DOUBLE)), 0) AS DOUBLE)"


def batches_views(
    interval_ms: int,
    feature_dim: int,
    n_blocks: int = 24,
    source: str = "rewards",
    contextual_agents: Sequence[str] = (),
) -> list[str]:
    """``learner_batches``: window_end (processing time), event_time (latest reward_ts, ms, for
    learners that discount by event time), campaign_id, agent, state, arm and the ArmStats sums.

    ``state`` is ``""`` for the creative agent and ``"<block>|<segment>"`` (block of the UTC day
    of the impression) for the bid and budget agents.

    ``xx`` (Σxxᵀ, row-major) and ``rx`` (Σrx) are computed for ``contextual_agents`` only and NULL
    for the others: they are ``feature_dim² + feature_dim`` sums per row, which made up most of the
    micro-batches' aggregation and JSON cost for learners that never read them.
    """
    block_ms = 86_400_000 // n_blocks
    keyed = f"""CREATE TEMPORARY VIEW IF NOT EXISTS keyed_rewards AS
SELECT *, action AS arm, PROCTIME() AS arrived,
       CASE WHEN agent = 'creative' THEN ''
            ELSE CONCAT(CAST(MOD(event_ts, 86400000) / {block_ms} AS STRING), '|', segment) END AS state
FROM {source}"""
    contextual = sorted(contextual_agents) if feature_dim > 0 else []
    if not contextual:
        body = _window_aggregate(interval_ms, 0, where=None)
    else:
        agents = ", ".join(f"'{a}'" for a in contextual)
        body = (
            f"{_window_aggregate(interval_ms, feature_dim, where=f'agent IN ({agents})')}\nUNION ALL\n"
            f"{_window_aggregate(interval_ms, 0, where=f'agent NOT IN ({agents})')}"
        )
    batches = f"CREATE TEMPORARY VIEW IF NOT EXISTS learner_batches AS\n{body}"
    return [keyed, batches]


def _window_aggregate(interval_ms: int, feature_dim: int, where: str | None) -> str:
    """One micro-batch aggregation over ``keyed_rewards`` (rows matching ``where``), with the
    context sums when ``feature_dim`` > 0."""
    initial = "kind = 'initial'"
    if feature_dim > 0:
        xx_terms = ", ".join(
            _sum(f"CASE WHEN {initial} THEN features[{i}] * features[{j}] END")
            for i in range(1, feature_dim + 1)
            for j in range(1, feature_dim + 1)
        )
        rx_terms = ", ".join(_sum(f"reward * features[{i}]") for i in range(1, feature_dim + 1))
        xx, rx = f"ARRAY[{xx_terms}]", f"ARRAY[{rx_terms}]"
    else:
        xx = rx = "CAST(NULL AS ARRAY<DOUBLE>)"
    filtered = f"\nWHERE {where}" if where else ""
    return f"""SELECT CAST(window_end AS STRING) AS window_end, MAX(reward_ts) AS event_time,
  campaign_id, agent, state, arm,
  {_sum(f"CASE WHEN {initial} THEN 1.0 END")} AS trials,
  {_sum(f"CASE WHEN {initial} THEN reward END")} AS reward_sum,
  {_sum(f"CASE WHEN {initial} THEN reward * reward END")} AS reward_sq_sum,
  {_sum("CASE WHEN kind = 'delayed' THEN reward END")} AS delayed_sum,
  {_sum("reward / propensity")} AS ipw_reward_sum,
  {_sum("cost")} AS cost_sum,
  {_sum(f"CASE WHEN {initial} THEN 1.0 END")} AS wins,
  {xx} AS xx,
  {rx} AS rx
FROM TABLE(TUMBLE(TABLE keyed_rewards, DESCRIPTOR(arrived), {interval(interval_ms)})){filtered}
GROUP BY window_start, window_end, campaign_id, agent, state, arm"""
