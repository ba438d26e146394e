"""Flink SQL for the learners' micro-batches: sufficient statistics per key, in the JVM.

``learner_batches`` has one row per (micro-batch window, campaign_id, agent): the key's arms, each
with its ``learners.batch.ArmStats`` sums, in one array (``ADLOOP_ARM_STATS``, udf/). So the Python
learner operator is called once per key and window, not once per arm and state (in the
feedback benchmark, 500–850 calls where there were ~32,000). ``learner_batch_arms`` unnests it
into one row per arm.

Windows run on one of two clocks (``batches.clock``):

- processing time (live): a micro-batch is what arrived in the last ``interval_ms``, so initial
  rewards (emitted at window close) and delayed credit (emitted days later) both reach the
  learners as soon as they exist. Flink drops pending processing-time timers when the input
  ends, so the rows of the last window of a run that ends (bounded, or stopped with a drain)
  never reach the learners;
- event time (replays): a micro-batch is the rows whose ``reward_time`` falls in a window of
  ``interval_ms`` of event time, closed by the watermark and, at the end of the input, by the
  final one: every row reaches the learners, and the batches are the same in every run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attribution.config import RewardConfig
from contract import events
from learners.bid_agent import NOT_ENTERED
from learners.campaigns import CampaignTable
from sql.attribution import reward_expression
from sql.ingest import interval
from sql.schema import ARM_FIELDS, columns

# The agents that learn per bid request: their trials, wins and spend come from ``ad.auctions``;
# their reward rows add only value (the click and credit part of their reward).
AUCTION_AGENTS = ("bid", "budget")
MAX_MULTIPLIER = 1000  # the largest bid multiplier the statistics take
SAMPLE_SCALE = 1_000_000  # resolution of the sampled share of impressions
SAMPLE_MIX = 2_654_435_761  # odd, near 2^32 / golden ratio; |hash| * it stays within a BIGINT


def batches_views(
    interval_ms: int,
    feature_dim: int,
    campaigns: CampaignTable | None = None,
    rewards: RewardConfig | None = None,
    source: str = "rewards",
    contextual_agents: Sequence[str] = (),
    clock: str = "processing",
    segmented_agents: Sequence[str] = (),
    sample_rates: Mapping[str, float] | None = None,
) -> list[str]:
    """``learner_batches``: window_end (on the clock), event_time (latest reward_ts of the key in
    the window, ms, for learners that discount by event time), campaign_id, agent and ``arms``;
    ``learner_batch_arms``: the same with one row per arm.

    The creative agent's rows are its reward rows, with ``state`` ``""``: a trial and a win per
    impression, its reward, and its cost. The bid and budget agents' rows are keyed by
    ``state = "<day>|<block>|<segment>"`` (``CampaignTable.agent_state_sql``, of the request's event
    time) and come from two streams: every ``ad.auctions`` request is a trial (kind ``request``,
    or ``won`` with a win and its clearing price as cost; a request with bid 0, throttled or not
    entered, is a trial of the bid agent's arm ``NOT_ENTERED`` and of no multiplier, so the bid
    agent plans with every request, not only those the pacer let through), and every reward row
    adds its value (kind ``value`` for an initial row, ``delayed`` for credit: the click and credit
    terms of the agent's reward, its cost term left out since the spend is counted once per
    request from the auctions). A decision whose action is no multiplier in (0, MAX_MULTIPLIER]
    (bid) or pacing rate in [0, 1] (budget) is left out of the statistics.

    ``xx`` (Σxxᵀ, row-major) and ``rx`` (Σrx) are computed for ``contextual_agents`` only and NULL
    for the others: they are ``feature_dim² + feature_dim`` sums per arm, most of the micro-batches'
    aggregation and JSON cost, for learners that never read them.

    The rows of ``segmented_agents`` (a creative learner per segment) have the decision's logged
    segment as their ``state``. ``samples`` holds, for each agent of ``sample_rates`` (the segment
    agent), the feature vectors of the share ``rate`` of its initial rows, chosen by a hash of the
    impression id: every replay samples the same impressions, though which micro-batch carries a
    sample, and in which order, follows the batches' clock (processing time: arrival); NULL for
    the others.
    """
    if clock not in ("processing", "event"):
        raise ValueError(f"batches_views: clock must be 'processing' or 'event', got {clock!r}")
    campaigns = campaigns or CampaignTable()
    rewards = rewards or RewardConfig()
    time = "arrived" if clock == "processing" else "reward_time"
    per_request = "agent IN (" + ", ".join(f"'{a}'" for a in AUCTION_AGENTS) + ")"
    item = events.item_columns(events.AUCTIONS, "decisions")
    decision_fields = ", ".join(columns(item))
    # A throttled request (bid 0) is also a request of the bid agent's NOT_ENTERED arm, read in
    # the same pass (a second read of ontime_auctions would deduplicate the auctions twice).
    not_entered = f"CAST(ROW('bid', '{NOT_ENTERED}', 1.0, 0) AS ROW<{item}>)"
    # A decision whose action is no multiplier (bid) or pacing rate (budget) cannot be learned
    # from: it is left out of the statistics (it stays in the reward table), so one bad serving
    # node cannot make a key's every micro-batch fail.
    usable = (
        f"(action = '{NOT_ENTERED}' OR CASE agent"
        f" WHEN 'bid' THEN TRY_CAST(action AS DOUBLE) > 0 AND TRY_CAST(action AS DOUBLE) <= {MAX_MULTIPLIER}"
        " WHEN 'budget' THEN TRY_CAST(action AS DOUBLE) BETWEEN 0 AND 1 ELSE TRUE END)"
    )
    # Columns in the order the aggregate reads them (keys, MAX's argument, ADLOOP_ARM_STATS's,
    # the time attribute): the planner pushes this projection under the union of initial and
    # delayed rewards, and with nothing left to reorder no projection of its own runs over it.
    segment_state = ""
    if segmented_agents:
        segmented = ", ".join(f"'{a}'" for a in sorted(segmented_agents))
        segment_state = f" WHEN agent IN ({segmented}) THEN segment"
    # HASH_CODE (Java's String.hashCode) of ids that differ in their last characters differs by
    # small steps: times a large odd constant (a Weyl sequence), its residues spread evenly.
    sampled = " ".join(
        f"WHEN '{agent}' THEN MOD(ABS(CAST(HASH_CODE(impression_id) AS BIGINT) * {SAMPLE_MIX}), "
        f"{SAMPLE_SCALE}) < {round(rate * SAMPLE_SCALE)}"
        for agent, rate in sorted((sample_rates or {}).items())
    )
    sample = (
        f"CASE WHEN kind = 'initial' AND CASE agent {sampled} ELSE FALSE END THEN features END"
        if sampled
        else "CAST(NULL AS ARRAY<DOUBLE>)"
    )
    keyed = f"""CREATE TEMPORARY VIEW IF NOT EXISTS keyed_rewards AS
SELECT campaign_id, agent, reward_ts,
       CASE WHEN {per_request} THEN {campaigns.agent_state_sql("event_ts", "segment")}{segment_state}
         ELSE '' END AS state,
       action AS arm,
       CASE WHEN {per_request} AND kind = 'initial' THEN 'value' ELSE kind END AS kind,
       CASE WHEN {per_request} THEN {reward_expression(rewards, "click", "credit", "0.0")} ELSE reward END
         AS reward,
       propensity, CASE WHEN {per_request} THEN CAST(NULL AS DOUBLE) ELSE cost END AS cost,
       {sample} AS sample, PROCTIME() AS arrived, reward_time, features
FROM {source}
WHERE NOT {per_request} OR {usable}
UNION ALL
SELECT campaign_id, agent, ts AS reward_ts, {campaigns.agent_state_sql("ts", "segment")} AS state,
       action AS arm, CASE WHEN won = 1 THEN 'won' ELSE 'request' END AS kind, CAST(NULL AS DOUBLE) AS reward,
       propensity, CASE WHEN won = 1 THEN COALESCE(clearing_price, 0.0) ELSE 0.0 END AS cost,
       CAST(NULL AS ARRAY<DOUBLE>) AS sample, PROCTIME() AS arrived, rowtime AS reward_time,
       CAST(NULL AS ARRAY<DOUBLE>) AS features
FROM ontime_auctions CROSS JOIN UNNEST(
  CASE WHEN bid = 0 THEN ARRAY_CONCAT(decisions, ARRAY[{not_entered}]) ELSE decisions END
) AS d ({decision_fields})
WHERE {per_request} AND {usable}
  AND NOT (agent = 'bid' AND bid = 0 AND action <> '{NOT_ENTERED}')"""
    contextual = sorted(contextual_agents) if feature_dim > 0 else []
    stats = "ADLOOP_ARM_STATS(state, arm, kind, reward, propensity, cost"
    if contextual:
        agents = ", ".join(f"'{a}'" for a in contextual)
        stats += f", features, CASE WHEN agent IN ({agents}) THEN {feature_dim} ELSE 0 END)"
    else:
        stats += ")"  # no context sums: the features are not read, nor shuffled to the aggregate
    samples = "ARRAY_AGG(sample IGNORE NULLS)" if sampled else "CAST(NULL AS ARRAY<ARRAY<DOUBLE>>)"
    batches = f"""CREATE TEMPORARY VIEW IF NOT EXISTS learner_batches AS
SELECT CAST(window_end AS STRING) AS window_end, MAX(reward_ts) AS event_time, campaign_id, agent,
  {stats} AS arms, {samples} AS samples
FROM TABLE(TUMBLE(TABLE keyed_rewards, DESCRIPTOR({time}), {interval(interval_ms)}))
GROUP BY window_start, window_end, campaign_id, agent"""
    return [keyed, batches, batch_arms_view("learner_batches")]


def batch_arms_view(source: str, name: str = "learner_batch_arms") -> str:
    """One row per arm of the micro-batches in ``source`` (columns as ``learner_batches``)."""
    names = list(columns(ARM_FIELDS))
    return f"""CREATE TEMPORARY VIEW IF NOT EXISTS {name} AS
SELECT b.window_end, b.event_time, b.campaign_id, b.agent, {", ".join(f"a.{n}" for n in names)}
FROM {source} AS b CROSS JOIN UNNEST(b.arms) AS a ({", ".join(names)})"""
