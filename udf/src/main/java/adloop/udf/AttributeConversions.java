package adloop.udf;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.flink.metrics.Counter;
import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.api.dataview.ListView;
import org.apache.flink.table.functions.FunctionContext;
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
 * <p>A touch is kept compactly ({@link Schemas#TOUCHES}): its times, the click flag, and what the
 * delayed reward rows of its impression need, typed (the features and the decisions, each with its
 * agent, action, propensity and policy version); never the raw payload. A credit row carries the
 * features and decisions of its touch.
 *
 * <p>State per (user, campaign): the touches of the last lookback and the conversions waiting for
 * the watermark. The model settings travel with each waiting conversion (timers get no call
 * arguments). Touches older than the lookback behind the watermark can never count again: they are
 * dropped when a new touch comes and the oldest is a quarter lookback past that (so the list is
 * rebuilt rarely). A partition that goes quiet is cleared by its expiry timer once the watermark
 * is a lookback past its latest touch.
 *
 * <p>At most {@code max_touches} touches count for a conversion: the most recent in its lookback,
 * in last-touch order. A pair that has more (a bot, a hot user) keeps its most recent ones: once
 * it holds a quarter more than the cap, the touches that can never be among the cap most recent
 * again go, counted in the metric {@code adloop.attribution_touches_dropped}. A touch is one of
 * those when {@code max_touches} touches later than it have times at or before the watermark:
 * every conversion still to come or waiting is after the watermark, so those touches would all
 * rank before it. What goes is thus decided by the data, whatever the arrival order, and a timer
 * loads at most a cap and a quarter of touches up to the watermark (and those ahead of it, which
 * the parse's future limit bounds).
 *
 * <p>The state has no TTL ({@link #NO_TTL}): the job's {@code table.exec.state.ttl} is the dedup TTL
 * (2 days of processing time by default), and applied here it dropped every touch that old, so
 * conversions lost the credit of older touches of their 30-day lookback. The expiry timer bounds
 * the state in event time instead.
 */
@DataTypeHint(Schemas.CREDIT)
public class AttributeConversions extends ProcessTableFunction<Row> {

    private static final String TOUCH_TYPE = Schemas.TOUCHES;
    // Positions in a touch row.
    private static final int IMPRESSION_ID = 0;
    private static final int SEGMENT = 1;
    private static final int IMP_TS = 2;
    private static final int TOUCH_TS = 3;
    private static final int IS_CLICK = 4;
    private static final int FEATURES = 5;
    private static final int DECISIONS = 6;
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

    /** The cap's bookkeeping (a state entry of its own, so the others keep their types). */
    public static class TouchCap {
        /** Touches held. NULL in a state restored from before the cap: counted at the next touch. */
        public Long held;
        /** The count at which the next pruning runs. */
        public Long pruneAt;
        /** The cap of the latest touch (timers get no call arguments). */
        public Integer max;
    }

    private transient Counter dropped;

    @Override
    public void open(FunctionContext context) {
        dropped = context.getMetricGroup().addGroup("adloop").counter("attribution_touches_dropped");
    }

    public void eval(
            Context ctx,
            @StateHint(type = @DataTypeHint(TOUCH_TYPE), ttl = NO_TTL) ListView<Row> touches,
            @StateHint(type = @DataTypeHint(PENDING_TYPE), ttl = NO_TTL) ListView<Row> pending,
            @StateHint(ttl = NO_TTL) Touches meta,
            @StateHint(ttl = NO_TTL) TouchCap cap,
            @ArgumentHint(
                            name = "input",
                            value = {ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.REQUIRE_ON_TIME})
                    Row input,
            @ArgumentHint(name = "lookback_ms") Long lookbackMs,
            @ArgumentHint(name = "half_life_ms") Long halfLifeMs,
            @ArgumentHint(name = "click_boost") Double clickBoost,
            @ArgumentHint(name = "last_touch") Boolean lastTouch,
            @ArgumentHint(name = "max_touches") Integer maxTouches)
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
                            input.getFieldAs("features"),
                            input.getFieldAs("decisions")));
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
            if (cap.held == null) {
                long held = 0;
                for (Row ignored : touches.get()) {
                    held++;
                }
                cap.held = held - 1; // less the one just added, counted below
            }
            cap.held++;
            cap.max = maxTouches;
            if (cap.pruneAt == null) {
                cap.pruneAt = pruneThreshold(maxTouches, 0);
            }
            boolean old = watermark != null && meta.oldest < watermark - lookbackMs - lookbackMs / 4;
            if (old || (watermark != null && cap.held >= cap.pruneAt)) {
                prune(touches, watermark - lookbackMs, watermark, meta, cap);
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

    public void onTimer(
            OnTimerContext ctx, ListView<Row> touches, ListView<Row> pending, Touches meta, TouchCap cap)
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
            int max = cap.max == null ? Integer.MAX_VALUE : cap.max;
            for (Row conversion : due) {
                attribute(conversion, all, max);
            }
            pending.clear();
            if (!waiting.isEmpty()) {
                pending.addAll(waiting);
            }
        }
        if (meta.expiryAt != null && now >= meta.expiryAt) {
            expire(ctx, now, touches, meta, cap, waiting.isEmpty());
        }
    }

    /**
     * The expiry timer: once the watermark is a lookback past the latest touch, no conversion still
     * to come can reach any touch here, so they go (and the whole state when nothing waits);
     * otherwise the timer moves on to the latest touch's expiry.
     */
    private static void expire(
            OnTimerContext ctx, long now, ListView<Row> touches, Touches meta, TouchCap cap, boolean nothingWaits)
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
            cap.held = 0L;
            cap.pruneAt = null;
        }
    }

    /** The count at which pruning runs again: a quarter above the cap, or above what is held. */
    static long pruneThreshold(int max, long held) {
        long base = Math.max(max, held);
        return base + Math.max(1, base / 4);
    }

    /**
     * Drops the touches older than {@code bound}, and those that {@code cap.max} touches later than
     * them at or before the watermark outrank for good.
     */
    private void prune(ListView<Row> touches, long bound, long watermark, Touches meta, TouchCap cap)
            throws Exception {
        List<Row> all = new ArrayList<>();
        touches.get().forEach(all::add);
        List<Row> settled = new ArrayList<>(); // in the lookback, at or before the watermark
        for (Row touch : all) {
            long ts = touch.getFieldAs(TOUCH_TS);
            if (ts >= bound && ts <= watermark) {
                settled.add(touch);
            }
        }
        int max = cap.max == null ? Integer.MAX_VALUE : cap.max;
        Set<Row> outranked = Collections.newSetFromMap(new IdentityHashMap<>());
        if (settled.size() > max) {
            settled.sort(LATEST_FIRST);
            outranked.addAll(settled.subList(max, settled.size()));
        }
        List<Row> kept = new ArrayList<>();
        Long oldest = null;
        long beyondCap = 0;
        for (Row touch : all) {
            long ts = touch.getFieldAs(TOUCH_TS);
            if (ts >= bound && !outranked.contains(touch)) {
                kept.add(touch);
                oldest = oldest == null ? ts : Math.min(oldest, ts);
            } else if (ts >= bound) {
                beyondCap++;
            }
        }
        touches.clear();
        if (!kept.isEmpty()) {
            touches.addAll(kept);
        }
        meta.oldest = oldest;
        cap.held = (long) kept.size();
        cap.pruneAt = pruneThreshold(max, kept.size());
        if (dropped != null) {
            dropped.inc(beyondCap);
        }
    }

    private void attribute(Row conversion, List<Row> touches, int maxTouches) {
        String conversionId = conversion.getFieldAs(0);
        String campaignId = conversion.getFieldAs(1);
        long convTs = conversion.getFieldAs(2);
        double value = conversion.getFieldAs(3);
        long lookbackMs = conversion.getFieldAs(4);
        long halfLifeMs = conversion.getFieldAs(5);
        double clickBoost = conversion.getFieldAs(6);
        boolean lastTouch = conversion.getFieldAs(7);

        List<Row> window = new ArrayList<>();
        for (Row touch : touches) {
            long ts = touch.getFieldAs(TOUCH_TS);
            if (ts >= convTs - lookbackMs && ts <= convTs) {
                window.add(touch);
            }
        }
        if (window.isEmpty()) {
            return;
        }
        if (window.size() > maxTouches) { // the most recent count; the order is a function of the data
            window.sort(LATEST_FIRST);
            window = new ArrayList<>(window.subList(0, maxTouches));
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
            credits.put(last.getFieldAs(IMPRESSION_ID), new Object[] {last, value});
        } else {
            long[] ages = new long[window.size()];
            boolean[] clicks = new boolean[window.size()];
            for (int i = 0; i < ages.length; i++) {
                Row touch = window.get(i);
                ages[i] = convTs - (long) touch.getFieldAs(TOUCH_TS);
                clicks[i] = (int) touch.getFieldAs(IS_CLICK) == 1;
            }
            double[] shares = DecayCredits.credits(value, ages, clicks, halfLifeMs, clickBoost);
            for (int i = 0; i < shares.length; i++) {
                Row touch = window.get(i);
                double credit = shares[i];
                Object[] entry = credits.get((String) touch.getFieldAs(IMPRESSION_ID));
                if (entry == null) {
                    credits.put(touch.getFieldAs(IMPRESSION_ID), new Object[] {touch, credit});
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
            out.setField("segment", touch.getFieldAs(SEGMENT));
            out.setField("imp_ts", touch.getFieldAs(IMP_TS));
            out.setField("conv_ts", convTs);
            out.setField("conv_value", value);
            out.setField("credit", (double) entry.getValue()[1]);
            out.setField("features", touch.getFieldAs(FEATURES));
            out.setField("decisions", touch.getFieldAs(DECISIONS));
            collect(out);
        }
    }

    /** Touches latest first, in last-touch order. */
    private static final Comparator<Row> LATEST_FIRST =
            (a, b) -> laterTouch(a, b) ? -1 : laterTouch(b, a) ? 1 : 0;

    /** Last-touch order: later time, then a click before a view, then the larger impression id. */
    private static boolean laterTouch(Row a, Row b) {
        long ta = a.getFieldAs(TOUCH_TS);
        long tb = b.getFieldAs(TOUCH_TS);
        if (ta != tb) {
            return ta > tb;
        }
        int ca = a.getFieldAs(IS_CLICK);
        int cb = b.getFieldAs(IS_CLICK);
        if (ca != cb) {
            return ca > cb;
        }
        return ((String) a.getFieldAs(IMPRESSION_ID)).compareTo(b.getFieldAs(IMPRESSION_ID)) > 0;
    }
}
