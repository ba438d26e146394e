package adloop.udf;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.types.Row;

/**
 * A micro-batch row as {@code (learner_key, row)}, the key {@code campaign_id + "|" + agent}: the
 * shape a PyFlink keyed process function reads, computed in the JVM. PyFlink's own {@code key_by}
 * computes the key in a Python operator of its own, one more round trip to the Python worker for
 * every micro-batch row, in the task that runs the micro-batch window.
 *
 * <p>{@code type} is {@code ROW<learner_key STRING, batch ROW<...>>}, built on the Python side from
 * the micro-batch table's schema.
 */
public class LearnerKeyRows implements MapFunction<Row, Row>, ResultTypeQueryable<Row> {

    private final TypeInformation<Row> type;

    public LearnerKeyRows(TypeInformation<Row> type) {
        this.type = type;
    }

    @Override
    public Row map(Row batch) {
        String key = batch.getFieldAs("campaign_id") + "|" + batch.getFieldAs("agent");
        return Row.of(key, batch);
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return type;
    }
}
