-- Reward per agent and serving policy version: decisions, total and per-decision reward.
SET 'execution.runtime-mode' = 'batch';
SELECT agent, policy_version,
       SUM(CASE WHEN kind = 'initial' THEN 1 ELSE 0 END) AS decisions,
       SUM(reward) AS reward,
       SUM(reward) / SUM(CASE WHEN kind = 'initial' THEN 1 ELSE 0 END) AS reward_per_decision
FROM rewards_table
GROUP BY agent, policy_version
ORDER BY agent, policy_version;
