-- Flink SQL-client init script for adloop, rendered by `python -m sql.client_init`.
-- Query tables: rewards_table (Parquet, batch), rewards_hourly, rewards_stream,
-- learner_batches_stream, learner_batch_arms_stream, dead_letters, late_events,
-- learner_drifts, policy_updates_stream; plus every
-- view of the feedback job.
SET 'sql-client.execution.result-mode' = 'tableau';
SET 'table.local-time-zone' = 'UTC';

CREATE TABLE IF NOT EXISTS rewards_table (
  schema_version INT, decision_id STRING, impression_id STRING, agent STRING, campaign_id STRING,
  segment STRING, action STRING, propensity DOUBLE, policy_version BIGINT, features ARRAY<DOUBLE>,
  kind STRING, conversion_id STRING, reward DOUBLE, click DOUBLE, credit DOUBLE, cost DOUBLE,
  conversion_value DOUBLE, event_ts BIGINT, reward_ts BIGINT, dt STRING, hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem', 'path' = '.work/tables/rewards', 'format' = 'parquet'
);

CREATE TABLE IF NOT EXISTS rewards_stream (
  schema_version INT, decision_id STRING, impression_id STRING, agent STRING, campaign_id STRING,
  segment STRING, action STRING, propensity DOUBLE, policy_version BIGINT, features ARRAY<DOUBLE>,
  kind STRING, conversion_id STRING, reward DOUBLE, click DOUBLE, credit DOUBLE, cost DOUBLE,
  conversion_value DOUBLE, event_ts BIGINT, reward_ts BIGINT
) WITH (
  'connector' = 'kafka', 'topic' = 'ad.rewards',
  'properties.bootstrap.servers' = '127.0.0.1:9092', 'properties.group.id' = 'sql-client',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset', 'format' = 'json'
);

CREATE TABLE IF NOT EXISTS learner_batches_stream (
  window_end STRING, event_time BIGINT, campaign_id STRING, agent STRING,
  arms ARRAY<ROW<state STRING, arm STRING, trials DOUBLE, reward_sum DOUBLE, reward_sq_sum DOUBLE,
  delayed_sum DOUBLE, ipw_reward_sum DOUBLE, cost_sum DOUBLE, wins DOUBLE, xx ARRAY<DOUBLE>,
  rx ARRAY<DOUBLE>>>, samples ARRAY<ARRAY<DOUBLE>>
) WITH (
  'connector' = 'kafka', 'topic' = 'ad.learner.batches',
  'properties.bootstrap.servers' = '127.0.0.1:9092', 'properties.group.id' = 'sql-client',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset', 'format' = 'json'
);

CREATE TEMPORARY VIEW IF NOT EXISTS learner_batch_arms_stream AS
SELECT b.window_end, b.event_time, b.campaign_id, b.agent, a.state, a.arm, a.trials, a.reward_sum, a.reward_sq_sum, a.delayed_sum, a.ipw_reward_sum, a.cost_sum, a.wins, a.xx, a.rx
FROM learner_batches_stream AS b CROSS JOIN UNNEST(b.arms) AS a (state, arm, trials, reward_sum, reward_sq_sum, delayed_sum, ipw_reward_sum, cost_sum, wins, xx, rx);

CREATE TABLE IF NOT EXISTS dead_letters (
  payload STRING, reason STRING, src_topic STRING, src_partition INT, src_offset BIGINT,
  payload_length INT
) WITH (
  'connector' = 'kafka', 'topic' = 'ad.dlq',
  'properties.bootstrap.servers' = '127.0.0.1:9092', 'properties.group.id' = 'sql-client',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset', 'format' = 'json'
);

CREATE TABLE IF NOT EXISTS late_events (
  payload STRING, event_id STRING, ts BIGINT, src_topic STRING, src_partition INT,
  src_offset BIGINT
) WITH (
  'connector' = 'kafka', 'topic' = 'ad.late',
  'properties.bootstrap.servers' = '127.0.0.1:9092', 'properties.group.id' = 'sql-client',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset', 'format' = 'json'
);

CREATE TABLE IF NOT EXISTS learner_drifts (
  campaign_id STRING, agent STRING, version BIGINT, event_time BIGINT, drifts BIGINT,
  detected_at_ms BIGINT
) WITH (
  'connector' = 'kafka', 'topic' = 'ad.learner.drift',
  'properties.bootstrap.servers' = '127.0.0.1:9092', 'properties.group.id' = 'sql-client',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset', 'format' = 'json'
);

CREATE TABLE IF NOT EXISTS policy_updates_stream (
  campaign_id STRING, agent STRING, version BIGINT, published BOOLEAN,
  pending BIGINT, outcome STRING, updated_at BIGINT, params STRING
) WITH (
  'connector' = 'kafka', 'topic' = 'ad.policy.updates',
  'properties.bootstrap.servers' = '127.0.0.1:9092', 'properties.group.id' = 'sql-client',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset', 'format' = 'json'
);

CREATE TEMPORARY VIEW IF NOT EXISTS rewards_hourly AS
SELECT dt, hr, campaign_id, agent, action,
       SUM(CASE WHEN kind = 'initial' THEN 1 ELSE 0 END) AS decisions,
       SUM(click) AS clicks, SUM(credit) AS credit, SUM(cost) AS cost, SUM(reward) AS reward
FROM rewards_table
GROUP BY dt, hr, campaign_id, agent, action;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS ADLOOP_PARSE AS 'adloop.udf.ParseEvent' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS ADLOOP_EVENT_TIME AS 'adloop.udf.EventTime' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS ADLOOP_CLICK_OUTCOMES AS 'adloop.udf.ClickOutcomes' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS ADLOOP_ATTRIBUTE AS 'adloop.udf.AttributeConversions' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS ADLOOP_ARM_STATS AS 'adloop.udf.ArmStats' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS ADLOOP_COUNTED AS 'adloop.udf.CountRows' LANGUAGE JAVA;

CREATE TABLE IF NOT EXISTS raw_impressions (
  payload STRING,
  src_topic STRING METADATA FROM 'topic' VIRTUAL,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  proctime AS PROCTIME(),
  rowtime AS CASE WHEN TO_TIMESTAMP_LTZ(ADLOOP_EVENT_TIME(payload), 3) <= TIMESTAMPADD(SECOND, 300, kafka_ts) THEN TO_TIMESTAMP_LTZ(ADLOOP_EVENT_TIME(payload), 3) ELSE TO_TIMESTAMP_LTZ(0, 3) END,
  WATERMARK FOR rowtime AS rowtime - INTERVAL '0 00:01:00.000' DAY(3) TO SECOND(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'ad.impressions',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'adloop-feedback',
  'scan.startup.mode' = 'earliest-offset',
  'properties.isolation.level' = 'read_committed',
  'format' = 'raw'
);

CREATE TEMPORARY VIEW IF NOT EXISTS clocked_impressions AS
SELECT *, MAX(CAST(rowtime AS TIMESTAMP(3))) OVER (
  PARTITION BY src_partition ORDER BY proctime ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
) AS partition_time
FROM raw_impressions;

CREATE TEMPORARY VIEW IF NOT EXISTS checked_impressions AS
SELECT payload, src_topic, src_partition, src_offset, rowtime, proctime, partition_time,
  CASE WHEN parsed.reason IS NOT NULL THEN parsed.reason
    WHEN TO_TIMESTAMP_LTZ(parsed.ts, 3) > TIMESTAMPADD(SECOND, 300, kafka_ts) THEN 'future_timestamp'
    ELSE CAST(NULL AS STRING) END AS reason,
  parsed
FROM (SELECT *, ADLOOP_PARSE(payload, '{"versions":[1],"fields":[{"name":"event_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"impression_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"ts","type":"integer","required":true,"minimum":0},{"name":"user_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"campaign_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"segment","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"creative_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"bid_price","type":"number","required":true,"minimum":0,"maximum":1000000},{"name":"win_price","type":"number","required":true,"minimum":0,"maximum":1000000},{"name":"features","type":"array","required":true,"items":"number","maximum":1000000,"length":8},{"name":"decisions","type":"array","required":true,"min_items":1,"unique_by":"agent","items":"object","fields":[{"name":"agent","type":"string","required":true,"enum":["creative","bid","budget","segment"]},{"name":"action","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"propensity","type":"number","required":true,"exclusive_minimum":0,"maximum":1},{"name":"policy_version","type":"integer","required":true,"minimum":0}],"max_items":4}],"max_bytes":65536}') AS parsed FROM clocked_impressions);

CREATE TEMPORARY VIEW IF NOT EXISTS valid_impressions AS
SELECT
  CAST(parsed.`schema_version` AS BIGINT) AS `schema_version`,
  CAST(parsed.`event_id` AS STRING) AS `event_id`,
  CAST(parsed.`impression_id` AS STRING) AS `impression_id`,
  CAST(parsed.`ts` AS BIGINT) AS `ts`,
  CAST(parsed.`user_id` AS STRING) AS `user_id`,
  CAST(parsed.`campaign_id` AS STRING) AS `campaign_id`,
  CAST(parsed.`segment` AS STRING) AS `segment`,
  CAST(parsed.`creative_id` AS STRING) AS `creative_id`,
  CAST(parsed.`bid_price` AS DOUBLE) AS `bid_price`,
  CAST(parsed.`win_price` AS DOUBLE) AS `win_price`,
  parsed.`features` AS `features`,
  parsed.`decisions` AS `decisions`,
  payload,
  src_topic,
  src_partition,
  src_offset,
  rowtime,
  proctime,
  partition_time
FROM checked_impressions
WHERE reason IS NULL;

CREATE TEMPORARY VIEW IF NOT EXISTS late_impressions AS SELECT * FROM valid_impressions WHERE (CAST(rowtime AS TIMESTAMP(3)) <= partition_time - INTERVAL '0 00:01:00.000' DAY(3) TO SECOND(3) OR rowtime <= CURRENT_WATERMARK(rowtime));

CREATE TEMPORARY VIEW IF NOT EXISTS ontime_impressions AS SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proctime ASC) AS event_rank
  FROM valid_impressions WHERE NOT COALESCE((CAST(rowtime AS TIMESTAMP(3)) <= partition_time - INTERVAL '0 00:01:00.000' DAY(3) TO SECOND(3) OR rowtime <= CURRENT_WATERMARK(rowtime)), FALSE)
) WHERE event_rank = 1;

CREATE TABLE IF NOT EXISTS raw_clicks (
  payload STRING,
  src_topic STRING METADATA FROM 'topic' VIRTUAL,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  proctime AS PROCTIME(),
  rowtime AS CASE WHEN TO_TIMESTAMP_LTZ(ADLOOP_EVENT_TIME(payload), 3) <= TIMESTAMPADD(SECOND, 300, kafka_ts) THEN TO_TIMESTAMP_LTZ(ADLOOP_EVENT_TIME(payload), 3) ELSE TO_TIMESTAMP_LTZ(0, 3) END,
  WATERMARK FOR rowtime AS rowtime - INTERVAL '0 00:01:00.000' DAY(3) TO SECOND(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'ad.clicks',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'adloop-feedback',
  'scan.startup.mode' = 'earliest-offset',
  'properties.isolation.level' = 'read_committed',
  'format' = 'raw'
);

CREATE TEMPORARY VIEW IF NOT EXISTS clocked_clicks AS
SELECT *, MAX(CAST(rowtime AS TIMESTAMP(3))) OVER (
  PARTITION BY src_partition ORDER BY proctime ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
) AS partition_time
FROM raw_clicks;

CREATE TEMPORARY VIEW IF NOT EXISTS checked_clicks AS
SELECT payload, src_topic, src_partition, src_offset, rowtime, proctime, partition_time,
  CASE WHEN parsed.reason IS NOT NULL THEN parsed.reason
    WHEN TO_TIMESTAMP_LTZ(parsed.ts, 3) > TIMESTAMPADD(SECOND, 300, kafka_ts) THEN 'future_timestamp'
    ELSE CAST(NULL AS STRING) END AS reason,
  parsed
FROM (SELECT *, ADLOOP_PARSE(payload, '{"versions":[1],"fields":[{"name":"event_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"impression_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"ts","type":"integer","required":true,"minimum":0}],"max_bytes":65536}') AS parsed FROM clocked_clicks);

CREATE TEMPORARY VIEW IF NOT EXISTS valid_clicks AS
SELECT
  CAST(parsed.`schema_version` AS BIGINT) AS `schema_version`,
  CAST(parsed.`event_id` AS STRING) AS `event_id`,
  CAST(parsed.`impression_id` AS STRING) AS `impression_id`,
  CAST(parsed.`ts` AS BIGINT) AS `ts`,
  payload,
  src_topic,
  src_partition,
  src_offset,
  rowtime,
  proctime,
  partition_time
FROM checked_clicks
WHERE reason IS NULL;

CREATE TEMPORARY VIEW IF NOT EXISTS late_clicks AS SELECT * FROM valid_clicks WHERE (CAST(rowtime AS TIMESTAMP(3)) <= partition_time - INTERVAL '0 00:01:00.000' DAY(3) TO SECOND(3) OR rowtime <= CURRENT_WATERMARK(rowtime));

CREATE TEMPORARY VIEW IF NOT EXISTS ontime_clicks AS SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proctime ASC) AS event_rank
  FROM valid_clicks WHERE NOT COALESCE((CAST(rowtime AS TIMESTAMP(3)) <= partition_time - INTERVAL '0 00:01:00.000' DAY(3) TO SECOND(3) OR rowtime <= CURRENT_WATERMARK(rowtime)), FALSE)
) WHERE event_rank = 1;

CREATE TABLE IF NOT EXISTS raw_conversions (
  payload STRING,
  src_topic STRING METADATA FROM 'topic' VIRTUAL,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  proctime AS PROCTIME(),
  rowtime AS CASE WHEN TO_TIMESTAMP_LTZ(ADLOOP_EVENT_TIME(payload), 3) <= TIMESTAMPADD(SECOND, 300, kafka_ts) THEN TO_TIMESTAMP_LTZ(ADLOOP_EVENT_TIME(payload), 3) ELSE TO_TIMESTAMP_LTZ(0, 3) END,
  WATERMARK FOR rowtime AS rowtime - INTERVAL '0 00:01:00.000' DAY(3) TO SECOND(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'ad.conversions',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'adloop-feedback',
  'scan.startup.mode' = 'earliest-offset',
  'properties.isolation.level' = 'read_committed',
  'format' = 'raw'
);

CREATE TEMPORARY VIEW IF NOT EXISTS clocked_conversions AS
SELECT *, MAX(CAST(rowtime AS TIMESTAMP(3))) OVER (
  PARTITION BY src_partition ORDER BY proctime ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
) AS partition_time
FROM raw_conversions;

CREATE TEMPORARY VIEW IF NOT EXISTS checked_conversions AS
SELECT payload, src_topic, src_partition, src_offset, rowtime, proctime, partition_time,
  CASE WHEN parsed.reason IS NOT NULL THEN parsed.reason
    WHEN TO_TIMESTAMP_LTZ(parsed.ts, 3) > TIMESTAMPADD(SECOND, 300, kafka_ts) THEN 'future_timestamp'
    ELSE CAST(NULL AS STRING) END AS reason,
  parsed
FROM (SELECT *, ADLOOP_PARSE(payload, '{"versions":[1],"fields":[{"name":"event_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"conversion_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"ts","type":"integer","required":true,"minimum":0},{"name":"user_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"campaign_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"value","type":"number","required":true,"minimum":0,"maximum":1000000}],"max_bytes":65536}') AS parsed FROM clocked_conversions);

CREATE TEMPORARY VIEW IF NOT EXISTS valid_conversions AS
SELECT
  CAST(parsed.`schema_version` AS BIGINT) AS `schema_version`,
  CAST(parsed.`event_id` AS STRING) AS `event_id`,
  CAST(parsed.`conversion_id` AS STRING) AS `conversion_id`,
  CAST(parsed.`ts` AS BIGINT) AS `ts`,
  CAST(parsed.`user_id` AS STRING) AS `user_id`,
  CAST(parsed.`campaign_id` AS STRING) AS `campaign_id`,
  CAST(parsed.`value` AS DOUBLE) AS `value`,
  payload,
  src_topic,
  src_partition,
  src_offset,
  rowtime,
  proctime,
  partition_time
FROM checked_conversions
WHERE reason IS NULL;

CREATE TEMPORARY VIEW IF NOT EXISTS late_conversions AS SELECT * FROM valid_conversions WHERE (CAST(rowtime AS TIMESTAMP(3)) <= partition_time - INTERVAL '0 00:01:00.000' DAY(3) TO SECOND(3) OR rowtime <= CURRENT_WATERMARK(rowtime));

CREATE TEMPORARY VIEW IF NOT EXISTS ontime_conversions AS SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY conversion_id ORDER BY proctime ASC) AS conversion_rank
  FROM (SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proctime ASC) AS event_rank
  FROM valid_conversions WHERE NOT COALESCE((CAST(rowtime AS TIMESTAMP(3)) <= partition_time - INTERVAL '0 00:01:00.000' DAY(3) TO SECOND(3) OR rowtime <= CURRENT_WATERMARK(rowtime)), FALSE)
) WHERE event_rank = 1)
) WHERE conversion_rank = 1;

CREATE TABLE IF NOT EXISTS raw_auctions (
  payload STRING,
  src_topic STRING METADATA FROM 'topic' VIRTUAL,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  proctime AS PROCTIME(),
  rowtime AS CASE WHEN TO_TIMESTAMP_LTZ(ADLOOP_EVENT_TIME(payload), 3) <= TIMESTAMPADD(SECOND, 300, kafka_ts) THEN TO_TIMESTAMP_LTZ(ADLOOP_EVENT_TIME(payload), 3) ELSE TO_TIMESTAMP_LTZ(0, 3) END,
  WATERMARK FOR rowtime AS rowtime - INTERVAL '0 00:01:00.000' DAY(3) TO SECOND(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'ad.auctions',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'adloop-feedback',
  'scan.startup.mode' = 'earliest-offset',
  'properties.isolation.level' = 'read_committed',
  'format' = 'raw'
);

CREATE TEMPORARY VIEW IF NOT EXISTS clocked_auctions AS
SELECT *, MAX(CAST(rowtime AS TIMESTAMP(3))) OVER (
  PARTITION BY src_partition ORDER BY proctime ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
) AS partition_time
FROM raw_auctions;

CREATE TEMPORARY VIEW IF NOT EXISTS checked_auctions AS
SELECT payload, src_topic, src_partition, src_offset, rowtime, proctime, partition_time,
  CASE WHEN parsed.reason IS NOT NULL THEN parsed.reason
    WHEN TO_TIMESTAMP_LTZ(parsed.ts, 3) > TIMESTAMPADD(SECOND, 300, kafka_ts) THEN 'future_timestamp'
    ELSE CAST(NULL AS STRING) END AS reason,
  parsed
FROM (SELECT *, ADLOOP_PARSE(payload, '{"versions":[1],"fields":[{"name":"event_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"request_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"ts","type":"integer","required":true,"minimum":0},{"name":"campaign_id","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"segment","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"time_block","type":"integer","required":true,"minimum":0,"maximum":1439},{"name":"bid","type":"number","required":true,"minimum":0,"maximum":1000000},{"name":"won","type":"integer","required":true,"minimum":0,"maximum":1},{"name":"clearing_price","type":"number","required":false,"minimum":0,"maximum":1000000},{"name":"decisions","type":"array","required":true,"min_items":1,"unique_by":"agent","items":"object","fields":[{"name":"agent","type":"string","required":true,"enum":["bid","budget"]},{"name":"action","type":"string","required":true,"min_length":1,"max_length":128,"pattern":"^[A-Za-z0-9._-]+$"},{"name":"propensity","type":"number","required":true,"exclusive_minimum":0,"maximum":1},{"name":"policy_version","type":"integer","required":true,"minimum":0}],"max_items":2}],"max_bytes":65536}') AS parsed FROM clocked_auctions);

CREATE TEMPORARY VIEW IF NOT EXISTS valid_auctions AS
SELECT
  CAST(parsed.`schema_version` AS BIGINT) AS `schema_version`,
  CAST(parsed.`event_id` AS STRING) AS `event_id`,
  CAST(parsed.`request_id` AS STRING) AS `request_id`,
  CAST(parsed.`ts` AS BIGINT) AS `ts`,
  CAST(parsed.`campaign_id` AS STRING) AS `campaign_id`,
  CAST(parsed.`segment` AS STRING) AS `segment`,
  CAST(parsed.`time_block` AS BIGINT) AS `time_block`,
  CAST(parsed.`bid` AS DOUBLE) AS `bid`,
  CAST(parsed.`won` AS BIGINT) AS `won`,
  CAST(parsed.`clearing_price` AS DOUBLE) AS `clearing_price`,
  parsed.`decisions` AS `decisions`,
  payload,
  src_topic,
  src_partition,
  src_offset,
  rowtime,
  proctime,
  partition_time
FROM checked_auctions
WHERE reason IS NULL;

CREATE TEMPORARY VIEW IF NOT EXISTS late_auctions AS SELECT * FROM valid_auctions WHERE (CAST(rowtime AS TIMESTAMP(3)) <= partition_time - INTERVAL '0 00:01:00.000' DAY(3) TO SECOND(3) OR rowtime <= CURRENT_WATERMARK(rowtime));

CREATE TEMPORARY VIEW IF NOT EXISTS ontime_auctions AS SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proctime ASC) AS event_rank
  FROM valid_auctions WHERE NOT COALESCE((CAST(rowtime AS TIMESTAMP(3)) <= partition_time - INTERVAL '0 00:01:00.000' DAY(3) TO SECOND(3) OR rowtime <= CURRENT_WATERMARK(rowtime)), FALSE)
) WHERE event_rank = 1;

CREATE TEMPORARY VIEW IF NOT EXISTS click_events AS
SELECT impression_id, rowtime AS event_time, 0 AS is_click, ts, user_id, campaign_id, segment, win_price,
       features, decisions
FROM ontime_impressions
UNION ALL
SELECT impression_id, rowtime, 1, ts, CAST(NULL AS STRING), CAST(NULL AS STRING), CAST(NULL AS STRING),
       CAST(NULL AS DOUBLE), CAST(NULL AS ARRAY<DOUBLE>), CAST(NULL AS ARRAY<ROW<agent STRING, action STRING, propensity DOUBLE, policy_version BIGINT>>)
FROM ontime_clicks;

CREATE TEMPORARY VIEW IF NOT EXISTS impression_outcomes AS
SELECT impression_id, ts, user_id, campaign_id, segment, win_price, features, decisions,
       click_ts, rowtime AS outcome_time
FROM ADLOOP_CLICK_OUTCOMES(
  TABLE click_events PARTITION BY impression_id,
  CAST(3600000 AS BIGINT),  -- click_window_ms
  CAST(16 AS INT),  -- max_early_clicks
  DESCRIPTOR(event_time)  -- on_time
);

CREATE TEMPORARY VIEW IF NOT EXISTS initial_rewards AS
SELECT CONCAT(impression_id, ':', agent) AS decision_id, impression_id, agent, campaign_id, segment, action,
       propensity, policy_version, features, 'initial' AS kind, CAST(NULL AS STRING) AS conversion_id,
       CASE agent WHEN 'creative' THEN CAST(1.0 AS DOUBLE) * click + CAST(1.0 AS DOUBLE) * 0.0 - CAST(0.0 AS DOUBLE) * win_price WHEN 'bid' THEN CAST(1.0 AS DOUBLE) * click + CAST(1.0 AS DOUBLE) * 0.0 - CAST(1.0 AS DOUBLE) * win_price WHEN 'budget' THEN CAST(0.0 AS DOUBLE) * click + CAST(1.0 AS DOUBLE) * 0.0 - CAST(1.0 AS DOUBLE) * win_price WHEN 'segment' THEN CAST(1.0 AS DOUBLE) * click + CAST(1.0 AS DOUBLE) * 0.0 - CAST(0.0 AS DOUBLE) * win_price END AS reward,
       click, CAST(0.0 AS DOUBLE) AS credit, win_price AS cost, CAST(NULL AS DOUBLE) AS conversion_value,
       ts AS event_ts, reward_ts, outcome_time AS reward_time
FROM (
  SELECT o.*, d.*,
         CASE WHEN click_ts IS NULL THEN CAST(0.0 AS DOUBLE) ELSE CAST(1.0 AS DOUBLE) END AS click,
         COALESCE(click_ts, ts + 3600000) AS reward_ts
  FROM impression_outcomes o CROSS JOIN UNNEST(o.decisions) AS d (agent, action, propensity, policy_version)
);

CREATE TEMPORARY VIEW IF NOT EXISTS touches AS
SELECT impression_id, user_id, campaign_id, segment, ts AS imp_ts, ts AS touch_ts, rowtime AS touch_time,
       0 AS is_click, features, decisions
FROM ontime_impressions
UNION ALL
SELECT impression_id, user_id, campaign_id, segment, ts AS imp_ts, click_ts AS touch_ts,
       outcome_time AS touch_time, 1 AS is_click, features, decisions
FROM impression_outcomes WHERE click_ts IS NOT NULL;

CREATE TEMPORARY VIEW IF NOT EXISTS attribution_events AS
SELECT CONCAT(CAST(CHAR_LENGTH(user_id) AS STRING), ':', user_id, campaign_id) AS pair_key, campaign_id, touch_time AS event_time,
       CAST(NULL AS STRING) AS conversion_id, impression_id, segment, imp_ts, touch_ts AS ts, is_click,
       features, decisions, CAST(NULL AS DOUBLE) AS conv_value
FROM touches
UNION ALL
SELECT CONCAT(CAST(CHAR_LENGTH(user_id) AS STRING), ':', user_id, campaign_id), campaign_id, rowtime, conversion_id, CAST(NULL AS STRING), CAST(NULL AS STRING),
       CAST(NULL AS BIGINT), ts, CAST(NULL AS INT), CAST(NULL AS ARRAY<DOUBLE>),
       CAST(NULL AS ARRAY<ROW<agent STRING, action STRING, propensity DOUBLE, policy_version BIGINT>>), `value`
FROM ontime_conversions;

CREATE TEMPORARY VIEW IF NOT EXISTS impression_credits AS
SELECT conversion_id, impression_id, conv_ts, conv_value, campaign_id, segment, imp_ts, features, decisions,
       credit, rowtime AS credit_time
FROM ADLOOP_ATTRIBUTE(
  TABLE attribution_events PARTITION BY pair_key,
  CAST(2592000000 AS BIGINT),  -- lookback_ms
  CAST(604800000 AS BIGINT),  -- half_life_ms
  CAST(2.0 AS DOUBLE),  -- click_boost
  FALSE,  -- last_touch
  CAST(1000 AS INT),  -- max_touches
  DESCRIPTOR(event_time)  -- on_time
);

CREATE TEMPORARY VIEW IF NOT EXISTS delayed_rewards AS
SELECT CONCAT(impression_id, ':', agent) AS decision_id, impression_id, agent, campaign_id, segment, action,
       propensity, policy_version, features, 'delayed' AS kind, conversion_id,
       CASE agent WHEN 'creative' THEN CAST(1.0 AS DOUBLE) * 0.0 + CAST(1.0 AS DOUBLE) * credit - CAST(0.0 AS DOUBLE) * 0.0 WHEN 'bid' THEN CAST(1.0 AS DOUBLE) * 0.0 + CAST(1.0 AS DOUBLE) * credit - CAST(1.0 AS DOUBLE) * 0.0 WHEN 'budget' THEN CAST(0.0 AS DOUBLE) * 0.0 + CAST(1.0 AS DOUBLE) * credit - CAST(1.0 AS DOUBLE) * 0.0 WHEN 'segment' THEN CAST(1.0 AS DOUBLE) * 0.0 + CAST(1.0 AS DOUBLE) * credit - CAST(0.0 AS DOUBLE) * 0.0 END AS reward,
       CAST(0.0 AS DOUBLE) AS click, credit, CAST(0.0 AS DOUBLE) AS cost, conv_value AS conversion_value,
       imp_ts AS event_ts, conv_ts AS reward_ts, credit_time AS reward_time
FROM (
  SELECT c.*, d.*
  FROM impression_credits c CROSS JOIN UNNEST(c.decisions) AS d (agent, action, propensity, policy_version)
);

CREATE TEMPORARY VIEW IF NOT EXISTS rewards AS
SELECT * FROM initial_rewards UNION ALL SELECT * FROM delayed_rewards;

CREATE TEMPORARY VIEW IF NOT EXISTS dlq_rows AS SELECT ADLOOP_COUNTED(CASE WHEN CHAR_LENGTH(payload) > 4096 THEN SUBSTRING(payload FROM 1 FOR 4096) ELSE payload END, 'dlq_records') AS payload, reason, src_topic, src_partition, src_offset, CHAR_LENGTH(payload) AS payload_length FROM checked_impressions WHERE reason IS NOT NULL
UNION ALL SELECT ADLOOP_COUNTED(CASE WHEN CHAR_LENGTH(payload) > 4096 THEN SUBSTRING(payload FROM 1 FOR 4096) ELSE payload END, 'dlq_records') AS payload, reason, src_topic, src_partition, src_offset, CHAR_LENGTH(payload) AS payload_length FROM checked_clicks WHERE reason IS NOT NULL
UNION ALL SELECT ADLOOP_COUNTED(CASE WHEN CHAR_LENGTH(payload) > 4096 THEN SUBSTRING(payload FROM 1 FOR 4096) ELSE payload END, 'dlq_records') AS payload, reason, src_topic, src_partition, src_offset, CHAR_LENGTH(payload) AS payload_length FROM checked_conversions WHERE reason IS NOT NULL
UNION ALL SELECT ADLOOP_COUNTED(CASE WHEN CHAR_LENGTH(payload) > 4096 THEN SUBSTRING(payload FROM 1 FOR 4096) ELSE payload END, 'dlq_records') AS payload, reason, src_topic, src_partition, src_offset, CHAR_LENGTH(payload) AS payload_length FROM checked_auctions WHERE reason IS NOT NULL;

CREATE TEMPORARY VIEW IF NOT EXISTS late_rows AS SELECT ADLOOP_COUNTED(payload, 'late_records') AS payload, event_id, ts, src_topic, src_partition, src_offset FROM late_impressions
UNION ALL SELECT ADLOOP_COUNTED(payload, 'late_records') AS payload, event_id, ts, src_topic, src_partition, src_offset FROM late_clicks
UNION ALL SELECT ADLOOP_COUNTED(payload, 'late_records') AS payload, event_id, ts, src_topic, src_partition, src_offset FROM late_conversions
UNION ALL SELECT ADLOOP_COUNTED(payload, 'late_records') AS payload, event_id, ts, src_topic, src_partition, src_offset FROM late_auctions;

CREATE TEMPORARY VIEW IF NOT EXISTS keyed_rewards AS
SELECT campaign_id, agent, reward_ts,
       CASE WHEN agent IN ('bid', 'budget') THEN CONCAT(CAST(event_ts / 86400000 AS STRING), '|', CAST(MOD(event_ts, 86400000) * 24 / 86400000 AS STRING), '|', segment) WHEN agent IN ('creative') THEN segment
         ELSE '' END AS state,
       action AS arm,
       CASE WHEN agent IN ('bid', 'budget') AND kind = 'initial' THEN 'value' ELSE kind END AS kind,
       CASE WHEN agent IN ('bid', 'budget') THEN CASE agent WHEN 'creative' THEN CAST(1.0 AS DOUBLE) * click + CAST(1.0 AS DOUBLE) * credit - CAST(0.0 AS DOUBLE) * 0.0 WHEN 'bid' THEN CAST(1.0 AS DOUBLE) * click + CAST(1.0 AS DOUBLE) * credit - CAST(1.0 AS DOUBLE) * 0.0 WHEN 'budget' THEN CAST(0.0 AS DOUBLE) * click + CAST(1.0 AS DOUBLE) * credit - CAST(1.0 AS DOUBLE) * 0.0 WHEN 'segment' THEN CAST(1.0 AS DOUBLE) * click + CAST(1.0 AS DOUBLE) * credit - CAST(0.0 AS DOUBLE) * 0.0 END ELSE reward END
         AS reward,
       propensity, CASE WHEN agent IN ('bid', 'budget') THEN CAST(NULL AS DOUBLE) ELSE cost END AS cost,
       CASE WHEN kind = 'initial' AND CASE agent WHEN 'segment' THEN MOD(ABS(CAST(HASH_CODE(impression_id) AS BIGINT) * 2654435761), 1000000) < 100000 ELSE FALSE END THEN features END AS sample, PROCTIME() AS arrived, reward_time, features
FROM rewards
WHERE NOT agent IN ('bid', 'budget') OR (action = '-' OR CASE agent WHEN 'bid' THEN TRY_CAST(action AS DOUBLE) > 0 AND TRY_CAST(action AS DOUBLE) <= 1000 WHEN 'budget' THEN TRY_CAST(action AS DOUBLE) BETWEEN 0 AND 1 ELSE TRUE END)
UNION ALL
SELECT campaign_id, agent, ts AS reward_ts, CONCAT(CAST(ts / 86400000 AS STRING), '|', CAST(MOD(ts, 86400000) * 24 / 86400000 AS STRING), '|', segment) AS state,
       action AS arm, CASE WHEN won = 1 THEN 'won' ELSE 'request' END AS kind, CAST(NULL AS DOUBLE) AS reward,
       propensity, CASE WHEN won = 1 THEN COALESCE(clearing_price, 0.0) ELSE 0.0 END AS cost,
       CAST(NULL AS ARRAY<DOUBLE>) AS sample, PROCTIME() AS arrived, rowtime AS reward_time,
       CAST(NULL AS ARRAY<DOUBLE>) AS features
FROM ontime_auctions CROSS JOIN UNNEST(
  CASE WHEN bid = 0 THEN ARRAY_CONCAT(decisions, ARRAY[CAST(ROW('bid', '-', 1.0, 0) AS ROW<agent STRING, action STRING, propensity DOUBLE, policy_version BIGINT>)]) ELSE decisions END
) AS d (agent, action, propensity, policy_version)
WHERE agent IN ('bid', 'budget') AND (action = '-' OR CASE agent WHEN 'bid' THEN TRY_CAST(action AS DOUBLE) > 0 AND TRY_CAST(action AS DOUBLE) <= 1000 WHEN 'budget' THEN TRY_CAST(action AS DOUBLE) BETWEEN 0 AND 1 ELSE TRUE END)
  AND NOT (agent = 'bid' AND bid = 0 AND action <> '-');

CREATE TEMPORARY VIEW IF NOT EXISTS learner_batches AS
SELECT CAST(window_end AS STRING) AS window_end, MAX(reward_ts) AS event_time, campaign_id, agent,
  ADLOOP_ARM_STATS(state, arm, kind, reward, propensity, cost) AS arms, ARRAY_AGG(sample IGNORE NULLS) AS samples
FROM TABLE(TUMBLE(TABLE keyed_rewards, DESCRIPTOR(arrived), INTERVAL '0 00:00:00.100' DAY(3) TO SECOND(3)))
GROUP BY window_start, window_end, campaign_id, agent;

CREATE TEMPORARY VIEW IF NOT EXISTS learner_batch_arms AS
SELECT b.window_end, b.event_time, b.campaign_id, b.agent, a.state, a.arm, a.trials, a.reward_sum, a.reward_sq_sum, a.delayed_sum, a.ipw_reward_sum, a.cost_sum, a.wins, a.xx, a.rx
FROM learner_batches AS b CROSS JOIN UNNEST(b.arms) AS a (state, arm, trials, reward_sum, reward_sq_sum, delayed_sum, ipw_reward_sum, cost_sum, wins, xx, rx);

CREATE TABLE IF NOT EXISTS dlq_sink (
  payload STRING, reason STRING, src_topic STRING, src_partition INT, src_offset BIGINT,
  payload_length INT
) WITH ('connector' = 'kafka', 'topic' = 'ad.dlq', 'properties.bootstrap.servers' = '127.0.0.1:9092', 'properties.linger.ms' = '20', 'properties.batch.size' = '262144', 'sink.delivery-guarantee' = 'at-least-once', 'format' = 'json');

CREATE TABLE IF NOT EXISTS late_sink (
  payload STRING, event_id STRING, ts BIGINT, src_topic STRING, src_partition INT,
  src_offset BIGINT
) WITH ('connector' = 'kafka', 'topic' = 'ad.late', 'properties.bootstrap.servers' = '127.0.0.1:9092', 'properties.linger.ms' = '20', 'properties.batch.size' = '262144', 'sink.delivery-guarantee' = 'at-least-once', 'format' = 'json');

CREATE TABLE IF NOT EXISTS rewards_sink (
  schema_version INT, decision_id STRING, impression_id STRING, agent STRING, campaign_id STRING,
  segment STRING, action STRING, propensity DOUBLE, policy_version BIGINT, features ARRAY<DOUBLE>,
  kind STRING, conversion_id STRING, reward DOUBLE, click DOUBLE, credit DOUBLE, cost DOUBLE,
  conversion_value DOUBLE, event_ts BIGINT, reward_ts BIGINT
) WITH ('connector' = 'kafka', 'topic' = 'ad.rewards', 'properties.bootstrap.servers' = '127.0.0.1:9092', 'properties.linger.ms' = '20', 'properties.batch.size' = '262144', 'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'adloop-feedback.rewards', 'properties.transaction.timeout.ms' = '900000', 'format' = 'json');

CREATE TABLE IF NOT EXISTS rewards_parquet (
  schema_version INT, decision_id STRING, impression_id STRING, agent STRING, campaign_id STRING,
  segment STRING, action STRING, propensity DOUBLE, policy_version BIGINT, features ARRAY<DOUBLE>,
  kind STRING, conversion_id STRING, reward DOUBLE, click DOUBLE, credit DOUBLE, cost DOUBLE,
  conversion_value DOUBLE, event_ts BIGINT, reward_ts BIGINT, dt STRING, hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem', 'path' = '.work/tables/rewards', 'format' = 'parquet',
  'parquet.enable.dictionary' = 'false', 'sink.partition-commit.policy.kind' = 'success-file'
);

CREATE TABLE IF NOT EXISTS batches_sink (
  window_end STRING, event_time BIGINT, campaign_id STRING, agent STRING,
  arms ARRAY<ROW<state STRING, arm STRING, trials DOUBLE, reward_sum DOUBLE, reward_sq_sum DOUBLE,
  delayed_sum DOUBLE, ipw_reward_sum DOUBLE, cost_sum DOUBLE, wins DOUBLE, xx ARRAY<DOUBLE>,
  rx ARRAY<DOUBLE>>>, samples ARRAY<ARRAY<DOUBLE>>
) WITH ('connector' = 'kafka', 'topic' = 'ad.learner.batches', 'properties.bootstrap.servers' = '127.0.0.1:9092', 'properties.linger.ms' = '20', 'properties.batch.size' = '262144', 'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'adloop-feedback.batches', 'properties.transaction.timeout.ms' = '900000', 'key.format' = 'json', 'value.format' = 'json', 'key.fields' = 'campaign_id;agent', 'value.fields-include' = 'ALL');
