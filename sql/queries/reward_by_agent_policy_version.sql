-- Reward per (campaign, agent) and serving policy version (versions are per campaign and agent):
-- decisions, total and per-decision reward.
SET 'execution.runtime-mode' = 'batch';
SELECT campaign_id, agent, policy_version,
       SUM(CASE WHEN kind = 'initial' THEN 1 ELSE 0 END) AS decisions,
       SUM(reward) AS reward,
       SUM(reward) / SUM(CASE WHEN kind = 'initial' THEN 1 ELSE 0 END) AS reward_per_decision
FROM rewards_table
GROUP BY campaign_id, agent, policy_version
ORDER BY campaign_id, agent, policy_version;
