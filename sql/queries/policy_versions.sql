-- The versions each (campaign, agent) published, newest first: when, how (learned, adopted after
-- a rollback), and what each earned so far (decisions and reward of the reward rows it served).
SET 'execution.runtime-mode' = 'batch';
SELECT u.campaign_id, u.agent, u.version, TO_TIMESTAMP_LTZ(u.updated_at, 3) AS published_at, u.outcome,
       COALESCE(r.decisions, 0) AS decisions, r.reward,
       r.reward / NULLIF(r.decisions, 0) AS reward_per_decision
FROM (
  SELECT campaign_id, agent, version, MIN(updated_at) AS updated_at, MAX(outcome) AS outcome
  FROM policy_updates_stream /*+ OPTIONS('scan.bounded.mode' = 'latest-offset') */
  WHERE outcome IN ('written', 'adopt')
  GROUP BY campaign_id, agent, version
) AS u
LEFT JOIN (
  SELECT campaign_id, agent, policy_version,
         SUM(CASE WHEN kind = 'initial' THEN 1 ELSE 0 END) AS decisions, SUM(reward) AS reward
  FROM rewards_table
  GROUP BY campaign_id, agent, policy_version
) AS r
ON r.campaign_id = u.campaign_id AND r.agent = u.agent AND r.policy_version = u.version
ORDER BY u.campaign_id, u.agent, u.version DESC;
