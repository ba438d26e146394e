package adloop.udf;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.api.dataview.ListView;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * {@code ADLOOP_ATTRIBUTE}: conversion credit for the touches (impression views and counted clicks)
 * of one (user, campaign), as a process table function partitioned by one key column for the pair
 * (a PARTITION BY of two columns does not survive a view's expansion in Flink 2.2; nor do named
 * arguments, hence the positional call in sql/attribution.py).
 *
 * <p>Input rows are touches ({@code conversion_id} NULL) or conversions, timed by {@code on_time}.
 * A conversion at T waits for the watermark to reach T, so every on-time touch at or before T has
 * arrived; then it shares its value over the touches in {@code [T - lookback, T]}: time decay
 * {@code boost * 2^(-(T - t) / half_life)} normalised over them ({@link DecayCredits}), or all of it to the last touch
 * (latest time, a click before a view at the same time, then the larger impression id). A view and
 * a click of one impression yield one row with their credits summed.
 *
 * <p>Why a function and not an interval join: an interval join holds its output watermark back by
 * the whole lookback (30 days), so credit normalised downstream in event time would only come out
 * a lookback after the conversion. Here the output is timed at the conversion and the watermark
 * passes through undelayed.
 *
 * <p>Only view touches carry the impression's payload (its UTF-8 bytes, for the delayed reward
 * rows); a click touch has NULL and its credit row takes the payload of its impression's view
 * touch, which every counted click has (both come from the same on-time impression).
 *
 * <p>State per (user, campaign): the touches of the last lookback and the conversions waiting for
 * the watermark. The model settings travel with each waiting conversion (timers get no call
 * arguments). Touches older than the lookback behind the watermark can never count again: they are
 * dropped when a new touch comes and the oldest is a quarter lookback past that (so the list is
 * rebuilt rarely). A partition that goes quiet is cleared by its expiry timer once the watermark
 * is a lookback past its latest touch.
 *
 * <p>The state has no TTL ({@link #NO_TTL}): the job's {@code table.exec.state.ttl} is the dedup TTL
 * (2 days of processing time by default), and applied here it dropped every touch that old, so
 * conversions lost the credit of older touches of their 30-day lookback. The expiry timer bounds
 * the state in event time instead.
 */
@DataTypeHint(Schemas.CREDIT)
public class AttributeConversions extends ProcessTableFunction<Row> {

    private static final String TOUCH_TYPE =
            "ARRAY<ROW<impression_id STRING, segment STRING, imp_ts BIGINT, touch_ts BIGINT,"
                    + " is_click INT, imp_payload BYTES>>";
    private static final String PENDING_TYPE =
            "ARRAY<ROW<conversion_id STRING, campaign_id STRING, conv_ts BIGINT, conv_value DOUBLE, lookback_ms BIGINT,"
                    + " half_life_ms BIGINT, click_boost DOUBLE, last_touch BOOLEAN>>";

    /** A state entry's TTL that turns the job's {@code table.exec.state.ttl} off for it. */
    static final String NO_TTL = "0";

    /** Bookkeeping of a partition's touches. */
    public static class Touches {
        /** The oldest touch time kept. */
        public Long oldest;
        /** The latest touch time seen. */
        public Long latest;
        /** The lookback of the latest touch (the expiry timer gets no call arguments). */
        public Long lookbackMs;
        /** When the registered expiry timer fires, or NULL when none is registered. */
        public Long expiryAt;
    }

    public void eval(
            Context ctx,
            @StateHint(type = @DataTypeHint(TOUCH_TYPE), ttl = NO_TTL) ListView<Row> touches,
            @StateHint(type = @DataTypeHint(PENDING_TYPE), ttl = NO_TTL) ListView<Row> pending,
            @StateHint(ttl = NO_TTL) Touches meta,
            @ArgumentHint(
                            name = "input",
                            value = {ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.REQUIRE_ON_TIME})
                    Row input,
            @ArgumentHint(name = "lookback_ms") Long lookbackMs,
            @ArgumentHint(name = "half_life_ms") Long halfLifeMs,
            @ArgumentHint(name = "click_boost") Double clickBoost,
            @ArgumentHint(name = "last_touch") Boolean lastTouch)
            throws Exception {
        TimeContext<Long> time = ctx.timeContext(Long.class);
        String conversionId = input.getFieldAs("conversion_id");
        if (conversionId == null) {
            long ts = input.getFieldAs("ts");
            touches.add(
                    Row.of(
                            input.getFieldAs("impression_id"),
                            input.getFieldAs("segment"),
                            input.getFieldAs("imp_ts"),
                            ts,
                            input.getFieldAs("is_click"),
                            input.getFieldAs("imp_payload")));
            if (meta.oldest == null || ts < meta.oldest) {
                meta.oldest = ts;
            }
            if (meta.latest == null || ts > meta.latest) {
                meta.latest = ts;
            }
            meta.lookbackMs = lookbackMs;
            if (meta.expiryAt == null) {
                // One timer per partition; when it fires early it moves on to the latest touch.
                meta.expiryAt = meta.latest + lookbackMs;
                time.registerOnTime(meta.expiryAt);
            }
            // Every conversion still to come or waiting is after the watermark, so it cannot reach
            // a touch older than watermark - lookback.
            Long watermark = time.currentWatermark();
            if (watermark != null && meta.oldest < watermark - lookbackMs - lookbackMs / 4) {
                dropOlderThan(touches, watermark - lookbackMs, meta);
            }
        } else {
            pending.add(
                    Row.of(
                            conversionId,
                            input.getFieldAs("campaign_id"),
                            input.getFieldAs("ts"),
                            input.getFieldAs("conv_value"),
                            lookbackMs,
                            halfLifeMs,
                            clickBoost,
                            lastTouch));
            time.registerOnTime(time.time());
        }
    }

    public void onTimer(OnTimerContext ctx, ListView<Row> touches, ListView<Row> pending, Touches meta)
            throws Exception {
        long now = ctx.timeContext(Long.class).time();
        List<Row> waiting = new ArrayList<>();
        List<Row> due = new ArrayList<>();
        for (Row conversion : pending.get()) {
            long convTs = conversion.getFieldAs(2);
            (convTs <= now ? due : waiting).add(conversion);
        }
        if (!due.isEmpty()) { // the expiry timer usually finds no conversion due: no touch read then
            List<Row> all = new ArrayList<>();
            touches.get().forEach(all::add);
            for (Row conversion : due) {
                attribute(conversion, all);
            }
            pending.clear();
            if (!waiting.isEmpty()) {
                pending.addAll(waiting);
            }
        }
        if (meta.expiryAt != null && now >= meta.expiryAt) {
            expire(ctx, now, touches, meta, waiting.isEmpty());
        }
    }

    /**
     * The expiry timer: once the watermark is a lookback past the latest touch, no conversion still
     * to come can reach any touch here, so they go (and the whole state when nothing waits);
     * otherwise the timer moves on to the latest touch's expiry.
     */
    private static void expire(
            OnTimerContext ctx, long now, ListView<Row> touches, Touches meta, boolean nothingWaits)
            throws Exception {
        long expiry = meta.latest + meta.lookbackMs;
        if (now < expiry) {
            meta.expiryAt = expiry;
            ctx.timeContext(Long.class).registerOnTime(expiry);
        } else if (nothingWaits) {
            ctx.clearAllState();
        } else {
            touches.clear();
            meta.oldest = null;
            meta.latest = null;
            meta.expiryAt = null;
        }
    }

    /**
     * Drops the touches older than {@code bound}. A click touch has no payload of its own (its view
     * touch carries it): a kept click whose view goes takes the view's payload.
     */
    private static void dropOlderThan(ListView<Row> touches, long bound, Touches meta) throws Exception {
        List<Row> kept = new ArrayList<>();
        Map<String, byte[]> droppedPayloads = new HashMap<>();
        Long oldest = null;
        for (Row touch : touches.get()) {
            long ts = touch.getFieldAs(3);
            if (ts >= bound) {
                kept.add(touch);
                oldest = oldest == null ? ts : Math.min(oldest, ts);
            } else if (touch.getField(5) != null) {
                droppedPayloads.put(touch.getFieldAs(0), touch.getFieldAs(5));
            }
        }
        for (Row touch : kept) {
            if (touch.getField(5) == null) {
                touch.setField(5, droppedPayloads.get((String) touch.getFieldAs(0)));
            }
        }
        touches.clear();
        if (!kept.isEmpty()) {
            touches.addAll(kept);
        }
        meta.oldest = oldest;
    }

    private void attribute(Row conversion, List<Row> touches) {
        String conversionId = conversion.getFieldAs(0);
        String campaignId = conversion.getFieldAs(1);
        long convTs = conversion.getFieldAs(2);
        double value = conversion.getFieldAs(3);
        long lookbackMs = conversion.getFieldAs(4);
        long halfLifeMs = conversion.getFieldAs(5);
        double clickBoost = conversion.getFieldAs(6);
        boolean lastTouch = conversion.getFieldAs(7);

        List<Row> window = new ArrayList<>();
        Map<String, byte[]> payloads = new HashMap<>(); // impression_id -> payload (its view touch's)
        for (Row touch : touches) {
            long ts = touch.getFieldAs(3);
            if (ts >= convTs - lookbackMs && ts <= convTs) {
                window.add(touch);
            }
            if (touch.getField(5) != null) {
                payloads.putIfAbsent(touch.getFieldAs(0), touch.getFieldAs(5));
            }
        }
        if (window.isEmpty()) {
            return;
        }
        // impression_id -> [touch row, credit], in first-touch order
        Map<String, Object[]> credits = new LinkedHashMap<>();
        if (lastTouch) {
            Row last = window.get(0);
            for (Row touch : window) {
                if (laterTouch(touch, last)) {
                    last = touch;
                }
            }
            credits.put(last.getFieldAs(0), new Object[] {last, value});
        } else {
            long[] ages = new long[window.size()];
            boolean[] clicks = new boolean[window.size()];
            for (int i = 0; i < ages.length; i++) {
                Row touch = window.get(i);
                ages[i] = convTs - (long) touch.getFieldAs(3);
                clicks[i] = (int) touch.getFieldAs(4) == 1;
            }
            double[] shares = DecayCredits.credits(value, ages, clicks, halfLifeMs, clickBoost);
            for (int i = 0; i < shares.length; i++) {
                Row touch = window.get(i);
                double credit = shares[i];
                Object[] entry = credits.get((String) touch.getFieldAs(0));
                if (entry == null) {
                    credits.put(touch.getFieldAs(0), new Object[] {touch, credit});
                } else {
                    entry[1] = (double) entry[1] + credit;
                }
            }
        }
        for (Map.Entry<String, Object[]> entry : credits.entrySet()) {
            Row touch = (Row) entry.getValue()[0];
            Row out = Row.withNames();
            out.setField("conversion_id", conversionId);
            out.setField("campaign_id", campaignId);
            out.setField("impression_id", entry.getKey());
            out.setField("segment", touch.getFieldAs(1));
            out.setField("imp_ts", touch.getFieldAs(2));
            out.setField("conv_ts", convTs);
            out.setField("conv_value", value);
            out.setField("credit", (double) entry.getValue()[1]);
            out.setField("imp_payload", payloads.get(entry.getKey()));
            collect(out);
        }
    }

    /** Last-touch order: later time, then a click before a view, then the larger impression id. */
    private static boolean laterTouch(Row a, Row b) {
        long ta = a.getFieldAs(3);
        long tb = b.getFieldAs(3);
        if (ta != tb) {
            return ta > tb;
        }
        int ca = a.getFieldAs(4);
        int cb = b.getFieldAs(4);
        if (ca != cb) {
            return ca > cb;
        }
        return ((String) a.getFieldAs(0)).compareTo(b.getFieldAs(0)) > 0;
    }
}
