package adloop.udf;

import java.util.ArrayList;
import java.util.List;

import org.apache.flink.core.memory.MemorySegmentFactory;
import org.apache.flink.metrics.Counter;
import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.binary.BinaryRowData;
import org.apache.flink.table.data.binary.BinarySegmentUtils;
import org.apache.flink.table.data.utils.JoinedRowData;
import org.apache.flink.table.data.utils.ProjectedRowData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.table.runtime.typeutils.RowDataSerializer;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.utils.LogicalTypeParser;
import org.apache.flink.types.Row;

/**
 * {@code ADLOOP_CLICK_OUTCOMES}: every impression once, with its first click inside the click
 * window, as a process table function partitioned by {@code impression_id}.
 *
 * <p>Input rows are impressions ({@code is_click = 0}) and clicks, timed by {@code on_time}. A click
 * counts if its time is in {@code [impression time, impression time + click_window_ms]}; of those,
 * the first to arrive wins. The clicked outcome is emitted as soon as both are here; an impression
 * without a counted click is emitted with a NULL {@code click_ts} when the watermark reaches the end
 * of its window. This is what a LEFT interval join followed by a keep-first dedup per impression
 * gives, at a fraction of the cost: one state value per impression instead of a join state per side
 * (each access a RocksDB iterator) plus the dedup's own state, and no hold-back of the output
 * watermark by the window.
 *
 * <p>State per impression: one row. While the impression waits for a click it holds the impression's
 * input row; once a click counted, only the window end and the mark (later clicks are ignored). A
 * click that comes before its impression is kept until the impression comes or the watermark passes
 * the click (no on-time impression early enough for it can follow); at most {@code max_early_clicks}
 * of them, the first to arrive, and the rest counted in the metric
 * {@code adloop.early_clicks_dropped} (a flood of clicks for an id that has no impression yet
 * would otherwise grow one state value without bound). A second impression with the
 * same id while the first is in its window is ignored; ids are deduplicated by {@code event_id}
 * upstream, so this only guards against ids reused by a producer.
 *
 * <p>Input, stored impression and output stay in Flink's internal formats ({@link RowData}; the
 * impression as its binary row, one BYTES value of the state). With {@code Row}s, converting every
 * impression's decisions and features to Java objects and back (input, state read, state write,
 * output) was a third of this function's task in a profile of the feedback job. The input is
 * typed ({@link #INPUT_TYPE}, the columns of {@code click_events} in sql/attribution.py) because
 * Flink 2.2.1 hands an untyped table argument over as a {@code Row} only.
 *
 * <p>State is cleared with {@code clearAllState()}, never {@code clearAll()}: clearing the timers
 * too walks the timers of every key, and called from {@code onTimer} it lost other keys' due
 * timers (Flink 2.2.1; seen as impressions that never got their outcome). No timer needs
 * clearing: a fired timer is gone, and one left over meets an empty state and does nothing.
 *
 * <p>The state has no TTL: the timers clear it, and the job's {@code table.exec.state.ttl} (the
 * dedup TTL, processing time) would drop an impression still waiting for its click.
 */
@DataTypeHint(value = Schemas.CLICK_OUTCOME, bridgedTo = RowData.class)
public class ClickOutcomes extends ProcessTableFunction<RowData> {

    private static final String STATE_TYPE =
            "ROW<window_end BIGINT, clicked BOOLEAN, imp_time BIGINT, impression BYTES,"
                    + " early_clicks ARRAY<ROW<ts BIGINT, t BIGINT>>>";

    /** The input table's columns: those of {@code click_events} (sql/schema.py). */
    private static final String INPUT_TYPE = Schemas.CLICK_EVENTS;

    // Positions in the state row.
    private static final int WINDOW_END = 0;
    private static final int CLICKED = 1;
    private static final int IMP_TIME = 2;
    private static final int IMPRESSION = 3;
    private static final int EARLY_CLICKS = 4;

    /** The input columns an outcome carries, in output order: the output's, but {@code click_ts}. */
    private static final String[] OUTCOME_COLUMNS = outcomeColumns();

    private static String[] outcomeColumns() {
        List<String> names =
                new ArrayList<>(((RowType) LogicalTypeParser.parse(Schemas.CLICK_OUTCOME, ClickOutcomes.class.getClassLoader())).getFieldNames());
        if (!names.remove("click_ts")) {
            throw new IllegalStateException("Schemas.CLICK_OUTCOME has no click_ts: " + Schemas.CLICK_OUTCOME);
        }
        return names.toArray(new String[0]);
    }

    /** The input's layout, from its table semantics (the same for every row of the call). */
    private transient InputLayout layout;

    private transient Counter earlyClicksDropped;

    @Override
    public void open(FunctionContext context) {
        earlyClicksDropped = context.getMetricGroup().addGroup("adloop").counter("early_clicks_dropped");
    }

    public void eval(
            Context ctx,
            @StateHint(type = @DataTypeHint(STATE_TYPE), ttl = AttributeConversions.NO_TTL) Row state,
            @ArgumentHint(
                            name = "input",
                            value = {ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.REQUIRE_ON_TIME},
                            type = @DataTypeHint(value = INPUT_TYPE, bridgedTo = RowData.class))
                    RowData input,
            @ArgumentHint(name = "click_window_ms") Long clickWindowMs,
            @ArgumentHint(name = "max_early_clicks") Integer maxEarlyClicks) {
        InputLayout in = layout(ctx);
        TimeContext<Long> time = ctx.timeContext(Long.class);
        long t = time.time();
        if (input.getInt(in.isClick) == 0) {
            if (state.getField(WINDOW_END) != null) {
                return; // an id already in its window
            }
            long windowEnd = t + clickWindowMs;
            state.setField(WINDOW_END, windowEnd);
            state.setField(CLICKED, false);
            state.setField(IMP_TIME, t);
            state.setField(IMPRESSION, in.toBytes(input));
            Row[] early = state.getFieldAs(EARLY_CLICKS);
            state.setField(EARLY_CLICKS, null);
            if (early != null) {
                for (Row click : early) { // in arrival order: the first inside the window counts
                    long clickTime = click.getFieldAs(1);
                    if (clickTime >= t && clickTime <= windowEnd) {
                        emitClicked(in, state, click.getFieldAs(0));
                        break;
                    }
                }
            }
            time.registerOnTime(windowEnd);
        } else if (state.getField(WINDOW_END) != null) {
            boolean clicked = state.getFieldAs(CLICKED);
            long impTime = state.getFieldAs(IMP_TIME);
            long windowEnd = state.getFieldAs(WINDOW_END);
            if (!clicked && t >= impTime && t <= windowEnd) {
                emitClicked(in, state, input.getLong(in.ts));
            }
        } else {
            Row[] early = state.getFieldAs(EARLY_CLICKS);
            if (early != null && early.length >= maxEarlyClicks) {
                if (earlyClicksDropped != null) {
                    earlyClicksDropped.inc();
                }
                return;
            }
            List<Row> clicks = new ArrayList<>();
            if (early != null) {
                clicks.addAll(List.of(early));
            }
            clicks.add(Row.of(input.getLong(in.ts), t));
            state.setField(EARLY_CLICKS, clicks.toArray(new Row[0]));
            time.registerOnTime(t);
        }
    }

    public void onTimer(OnTimerContext ctx, Row state) {
        long now = ctx.timeContext(Long.class).time();
        Object windowEnd = state.getField(WINDOW_END);
        if (windowEnd == null) {
            // Early clicks whose impression never came: none of them can be matched any more.
            Row[] early = state.getFieldAs(EARLY_CLICKS);
            boolean waiting = false;
            if (early != null) {
                for (Row click : early) {
                    waiting |= (long) click.getFieldAs(1) > now;
                }
            }
            if (!waiting) {
                ctx.clearAllState();
            }
        } else if (now >= (long) windowEnd) {
            if (!(boolean) state.getFieldAs(CLICKED)) {
                collect(layout(ctx).outcome(state.getFieldAs(IMPRESSION), null));
            }
            ctx.clearAllState();
        }
        // else: an early click's timer after its impression came; the window timer is still due.
    }

    private void emitClicked(InputLayout in, Row state, long clickTs) {
        collect(in.outcome(state.getFieldAs(IMPRESSION), clickTs));
        // Only the window and the mark stay: later clicks of this impression do not count.
        state.setField(IMPRESSION, null);
        state.setField(CLICKED, true);
    }

    private InputLayout layout(Context ctx) {
        if (layout == null) {
            layout = new InputLayout((RowType) ctx.tableSemanticsFor("input").dataType().getLogicalType());
        }
        return layout;
    }

    /** Where the columns are in the input row, and how a stored impression becomes an outcome. */
    private static final class InputLayout {
        final int isClick;
        final int ts;
        private final int arity;
        private final int[] outcomeColumns = new int[OUTCOME_COLUMNS.length];
        private final RowDataSerializer serializer;

        InputLayout(RowType type) {
            isClick = type.getFieldIndex("is_click");
            ts = type.getFieldIndex("ts");
            arity = type.getFieldCount();
            for (int i = 0; i < OUTCOME_COLUMNS.length; i++) {
                outcomeColumns[i] = type.getFieldIndex(OUTCOME_COLUMNS[i]);
            }
            serializer = new RowDataSerializer(type);
        }

        /** The input row in Flink's binary row format. */
        byte[] toBytes(RowData input) {
            BinaryRowData row = serializer.toBinaryRow(input);
            return BinarySegmentUtils.copyToBytes(row.getSegments(), row.getOffset(), row.getSizeInBytes());
        }

        /** The outcome of a stored impression: its outcome columns, then {@code click_ts}. */
        RowData outcome(byte[] impression, Long clickTs) {
            BinaryRowData row = new BinaryRowData(arity);
            row.pointTo(MemorySegmentFactory.wrap(impression), 0, impression.length);
            return new JoinedRowData(
                    ProjectedRowData.from(outcomeColumns).replaceRow(row), GenericRowData.of(clickTs));
        }
    }
}
