-- Cost per attributed conversion, per campaign: spend of the impressions over the conversions
-- that credited at least one of them.
SET 'execution.runtime-mode' = 'batch';
SELECT campaign_id,
       SUM(CASE WHEN kind = 'initial' THEN cost ELSE 0 END) AS spend,
       COUNT(DISTINCT conversion_id) AS conversions,
       SUM(credit) AS attributed_value,
       SUM(CASE WHEN kind = 'initial' THEN cost ELSE 0 END) / NULLIF(COUNT(DISTINCT conversion_id), 0) AS cpa
FROM rewards_table
WHERE agent = 'creative'
GROUP BY campaign_id
ORDER BY campaign_id;
