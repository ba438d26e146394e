package adloop.udf;

import java.util.ArrayList;
import java.util.List;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.functions.ProcessTableFunction;
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
 * columns; once a click counted, only the window end and the mark (later clicks are ignored). A
 * click that comes before its impression is kept until the impression comes or the watermark passes
 * the click (no on-time impression early enough for it can follow). A second impression with the
 * same id while the first is in its window is ignored; ids are deduplicated by {@code event_id}
 * upstream, so this only guards against ids reused by a producer.
 *
 * <p>State is cleared with {@code clearAllState()}, never {@code clearAll()}: clearing the timers
 * too walks the timers of every key, and called from {@code onTimer} it lost other keys' due
 * timers (Flink 2.2.1; seen as impressions that never got their outcome). No timer needs
 * clearing: a fired timer is gone, and one left over meets an empty state and does nothing.
 *
 * <p>The state has no TTL: the timers clear it, and the job's {@code table.exec.state.ttl} (the
 * dedup TTL, processing time) would drop an impression still waiting for its click.
 */
@DataTypeHint(
        "ROW<ts BIGINT, user_id STRING, campaign_id STRING, segment STRING, win_price DOUBLE,"
                + " features ARRAY<DOUBLE>, decisions ARRAY<MAP<STRING, STRING>>, click_ts BIGINT>")
public class ClickOutcomes extends ProcessTableFunction<Row> {

    private static final String STATE_TYPE =
            "ROW<window_end BIGINT, clicked BOOLEAN, imp_time BIGINT, ts BIGINT, user_id STRING,"
                    + " campaign_id STRING, segment STRING, win_price DOUBLE, features ARRAY<DOUBLE>,"
                    + " decisions ARRAY<MAP<STRING, STRING>>, early_clicks ARRAY<ROW<ts BIGINT, t BIGINT>>>";

    // Positions in the state row.
    private static final int WINDOW_END = 0;
    private static final int CLICKED = 1;
    private static final int IMP_TIME = 2;
    private static final int TS = 3;
    private static final int USER_ID = 4;
    private static final int CAMPAIGN_ID = 5;
    private static final int SEGMENT = 6;
    private static final int WIN_PRICE = 7;
    private static final int FEATURES = 8;
    private static final int DECISIONS = 9;
    private static final int EARLY_CLICKS = 10;
    private static final int ARITY = 11;

    public void eval(
            Context ctx,
            @StateHint(type = @DataTypeHint(STATE_TYPE), ttl = AttributeConversions.NO_TTL) Row state,
            @ArgumentHint(
                            name = "input",
                            value = {ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.REQUIRE_ON_TIME})
                    Row input,
            @ArgumentHint(name = "click_window_ms") Long clickWindowMs) {
        TimeContext<Long> time = ctx.timeContext(Long.class);
        long t = time.time();
        int isClick = input.getFieldAs("is_click");
        if (isClick == 0) {
            if (state.getField(WINDOW_END) != null) {
                return; // an id already in its window
            }
            long windowEnd = t + clickWindowMs;
            state.setField(WINDOW_END, windowEnd);
            state.setField(CLICKED, false);
            state.setField(IMP_TIME, t);
            state.setField(TS, input.getFieldAs("ts"));
            state.setField(USER_ID, input.getFieldAs("user_id"));
            state.setField(CAMPAIGN_ID, input.getFieldAs("campaign_id"));
            state.setField(SEGMENT, input.getFieldAs("segment"));
            state.setField(WIN_PRICE, input.getFieldAs("win_price"));
            state.setField(FEATURES, input.getFieldAs("features"));
            state.setField(DECISIONS, input.getFieldAs("decisions"));
            Row[] early = state.getFieldAs(EARLY_CLICKS);
            state.setField(EARLY_CLICKS, null);
            if (early != null) {
                for (Row click : early) { // in arrival order: the first inside the window counts
                    long clickTime = click.getFieldAs(1);
                    if (clickTime >= t && clickTime <= windowEnd) {
                        emitClicked(state, click.getFieldAs(0));
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
                emitClicked(state, input.getFieldAs("ts"));
            }
        } else {
            Row[] early = state.getFieldAs(EARLY_CLICKS);
            List<Row> clicks = new ArrayList<>();
            if (early != null) {
                clicks.addAll(List.of(early));
            }
            clicks.add(Row.of(input.getFieldAs("ts"), t));
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
                collect(outcome(state, null));
            }
            ctx.clearAllState();
        }
        // else: an early click's timer after its impression came; the window timer is still due.
    }

    private void emitClicked(Row state, Long clickTs) {
        collect(outcome(state, clickTs));
        // Only the window and the mark stay: later clicks of this impression do not count.
        for (int i = IMP_TIME + 1; i < ARITY; i++) {
            state.setField(i, null);
        }
        state.setField(CLICKED, true);
    }

    private static Row outcome(Row state, Long clickTs) {
        return Row.of(
                state.getField(TS),
                state.getField(USER_ID),
                state.getField(CAMPAIGN_ID),
                state.getField(SEGMENT),
                state.getField(WIN_PRICE),
                state.getField(FEATURES),
                state.getField(DECISIONS),
                clickTs);
    }
}
