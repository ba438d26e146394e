package adloop.udf;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;

import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.Schema;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.runtime.typeutils.ExternalTypeInfo;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.utils.LogicalTypeParser;
import org.apache.flink.table.types.utils.TypeConversions;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;

/**
 * Runs a process table function of the job on a local MiniCluster over a table of the job's
 * shape ({@link Schemas}), rows given in arrival order. Its time column is the row time; the
 * watermark follows every row, just behind the latest time so far less {@code delayMs} (a row at
 * that time is not late), and reaches the end of time when the input ends.
 */
final class PtfHarness {

    private final String schema;
    private final String timeColumn;
    private final long delayMs;
    private final List<Row> rows = new ArrayList<>();

    /** @param schema a {@code ROW<...>} type of {@link Schemas}; {@code timeColumn} one of its columns */
    PtfHarness(String schema, String timeColumn, long delayMs) {
        this.schema = schema;
        this.timeColumn = timeColumn;
        this.delayMs = delayMs;
    }

    /** Adds a row: its time in ms, then the other columns in schema order. */
    PtfHarness add(long timeMs, Object... others) {
        Object[] fields = new Object[others.length + 1];
        System.arraycopy(others, 0, fields, 0, others.length);
        fields[others.length] = timeMs;
        rows.add(Row.of(fields));
        return this;
    }

    /**
     * The output rows of {@code query}, which reads the table as {@code events} and may call the
     * project's functions by their SQL names.
     */
    List<Row> run(String query) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
        tEnv.createTemporarySystemFunction("ADLOOP_CLICK_OUTCOMES", ClickOutcomes.class);
        tEnv.createTemporarySystemFunction("ADLOOP_ATTRIBUTE", AttributeConversions.class);

        RowType type = (RowType) LogicalTypeParser.parse(schema, getClass().getClassLoader());
        List<DataTypes.Field> physical = new ArrayList<>();
        for (RowType.RowField field : type.getFields()) {
            if (!field.getName().equals(timeColumn)) {
                physical.add(DataTypes.FIELD(field.getName(), TypeConversions.fromLogicalToDataType(field.getType())));
            }
        }
        physical.add(DataTypes.FIELD("t_ms", DataTypes.BIGINT().notNull()));
        DataType rowType = DataTypes.ROW(physical);
        int timeIndex = physical.size() - 1;
        long delay = delayMs; // locals: the strategy is serialised without this harness
        DataStream<Row> stream =
                env.fromData(ExternalTypeInfo.of(rowType), rows.toArray(new Row[0]))
                        .assignTimestampsAndWatermarks(
                                WatermarkStrategy.<Row>forGenerator(ctx -> new EveryRow(delay))
                                        .withTimestampAssigner((row, previous) -> (Long) row.getField(timeIndex)));
        Schema tableSchema =
                Schema.newBuilder()
                        .fromRowDataType(rowType)
                        .columnByMetadata("rowtime", "TIMESTAMP_LTZ(3)")
                        .watermark("rowtime", "SOURCE_WATERMARK()")
                        .build();
        tEnv.createTemporaryView("raw_events", tEnv.fromDataStream(stream, tableSchema));
        String columns =
                type.getFieldNames().stream()
                        .map(n -> n.equals(timeColumn) ? "rowtime AS `" + n + "`" : "`" + n + "`")
                        .collect(Collectors.joining(", "));
        tEnv.executeSql("CREATE TEMPORARY VIEW events AS SELECT " + columns + " FROM raw_events");
        List<Row> out = new ArrayList<>();
        try (CloseableIterator<Row> results = tEnv.executeSql(query).collect()) {
            results.forEachRemaining(out::add);
        }
        return out;
    }

    /** A watermark after every row: the latest row time so far, less {@code delayMs}, less 1 ms. */
    private static final class EveryRow implements WatermarkGenerator<Row> {
        private final long delayMs;
        private long latest = Long.MIN_VALUE;

        EveryRow(long delayMs) {
            this.delayMs = delayMs;
        }

        @Override
        public void onEvent(Row row, long timestamp, WatermarkOutput output) {
            latest = Math.max(latest, timestamp);
            output.emitWatermark(new Watermark(latest - delayMs - 1));
        }

        @Override
        public void onPeriodicEmit(WatermarkOutput output) {}
    }
}
