package adloop.udf;

/** Rendered by {@code python -m sql.schema} from sql/schema.py; do not edit. */
public final class Schemas {
    private Schemas() {}

    public static final String CLICK_EVENTS =
            "ROW<impression_id STRING, event_time TIMESTAMP_LTZ(3), is_click INT, ts BIGINT, user_id STRING, campaign_id STRING, segment STRING, win_price DOUBLE, features ARRAY<DOUBLE>, decisions ARRAY<ROW<agent STRING, action STRING, propensity DOUBLE, policy_version BIGINT>>>";

    public static final String CLICK_OUTCOME =
            "ROW<ts BIGINT, user_id STRING, campaign_id STRING, segment STRING, win_price DOUBLE, features ARRAY<DOUBLE>, decisions ARRAY<ROW<agent STRING, action STRING, propensity DOUBLE, policy_version BIGINT>>, click_ts BIGINT>";

    public static final String ATTRIBUTION_EVENTS =
            "ROW<pair_key STRING, campaign_id STRING, event_time TIMESTAMP_LTZ(3), conversion_id STRING, impression_id STRING, segment STRING, imp_ts BIGINT, ts BIGINT, is_click INT, features ARRAY<DOUBLE>, decisions ARRAY<ROW<agent STRING, action STRING, propensity DOUBLE, policy_version BIGINT>>, conv_value DOUBLE>";

    public static final String TOUCHES =
            "ARRAY<ROW<impression_id STRING, segment STRING, imp_ts BIGINT, touch_ts BIGINT, is_click INT, features ARRAY<DOUBLE>, decisions ARRAY<ROW<agent STRING, action STRING, propensity DOUBLE, policy_version BIGINT>>>>";

    public static final String CREDIT =
            "ROW<conversion_id STRING, campaign_id STRING, impression_id STRING, segment STRING, imp_ts BIGINT, conv_ts BIGINT, conv_value DOUBLE, credit DOUBLE, features ARRAY<DOUBLE>, decisions ARRAY<ROW<agent STRING, action STRING, propensity DOUBLE, policy_version BIGINT>>>";

    public static final String ARMS =
            "ARRAY<ROW<state STRING, arm STRING, trials DOUBLE, reward_sum DOUBLE, reward_sq_sum DOUBLE, delayed_sum DOUBLE, ipw_reward_sum DOUBLE, cost_sum DOUBLE, wins DOUBLE, xx ARRAY<DOUBLE>, rx ARRAY<DOUBLE>>>";
}
