package adloop.udf;

import java.util.HashMap;
import java.util.Map;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code ADLOOP_COUNTED(value, metric)}: returns {@code value} unchanged and counts the row in the
 * Flink counter {@code adloop.<metric>} of the operator that evaluates it.
 *
 * <p>Used in the projections of the dead-letter and late rows ({@code dlq_records},
 * {@code late_records}), so those counts show up in Flink's metrics (REST API, web UI, reporters)
 * beside the Python learners' {@code adloop} metrics, without a Python step in the SQL part. Each
 * source topic's branch is its own operator, so each has its own counter; sum them for the job.
 */
public class CountRows extends ScalarFunction {

    private transient MetricGroup group;
    private transient Map<String, Counter> counters;

    @Override
    public void open(FunctionContext context) {
        group = context.getMetricGroup().addGroup("adloop");
        counters = new HashMap<>();
    }

    /** Non-deterministic, so the planner neither folds the call away nor evaluates it twice. */
    @Override
    public boolean isDeterministic() {
        return false;
    }

    public @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData value, String metric) {
        counters.computeIfAbsent(metric, group::counter).inc();
        return value;
    }
}
