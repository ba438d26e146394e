-- Inverse-propensity estimate of a candidate creative policy's reward per decision, from the
-- logged propensities. Candidate: per campaign, always the creative with the best logged CTR.
-- IPS = (1/N) * sum over logged rows whose action the candidate would take of reward / propensity,
-- N = logged decisions; delayed rows add their credit to the decision that earned it.
SET 'execution.runtime-mode' = 'batch';
SELECT r.campaign_id, b.action AS candidate_creative,
       SUM(CASE WHEN r.action = b.action THEN r.reward / r.propensity ELSE 0 END)
         / SUM(CASE WHEN r.kind = 'initial' THEN 1 ELSE 0 END) AS ips_reward_per_decision,
       SUM(r.reward) / SUM(CASE WHEN r.kind = 'initial' THEN 1 ELSE 0 END) AS logged_reward_per_decision
FROM rewards_table r
JOIN (
  SELECT campaign_id, action FROM (
    SELECT campaign_id, action,
           ROW_NUMBER() OVER (PARTITION BY campaign_id ORDER BY AVG(click) DESC, action) AS rn
    FROM rewards_table
    WHERE agent = 'creative' AND kind = 'initial'
    GROUP BY campaign_id, action
  ) WHERE rn = 1
) b ON r.campaign_id = b.campaign_id
WHERE r.agent = 'creative'
GROUP BY r.campaign_id, b.action
ORDER BY r.campaign_id;
