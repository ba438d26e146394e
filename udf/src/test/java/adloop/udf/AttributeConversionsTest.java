package adloop.udf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

/** {@code ADLOOP_ATTRIBUTE} on a MiniCluster: decay, the lookback edge, models, timers. */
class AttributeConversionsTest {

    private static final long LOOKBACK = 30L * 86_400_000L;
    private static final long HALF_LIFE = 7L * 86_400_000L;

    private static String query(long lookback, long halfLife, boolean lastTouch) {
        return query(lookback, halfLife, lastTouch, 1_000);
    }

    private static String query(long lookback, long halfLife, boolean lastTouch, int maxTouches) {
        return "SELECT conversion_id, impression_id, credit, conv_ts, imp_ts, features, decisions"
                + " FROM ADLOOP_ATTRIBUTE(TABLE events PARTITION BY pair_key, CAST(" + lookback + " AS BIGINT),"
                + " CAST(" + halfLife + " AS BIGINT), CAST(2.0 AS DOUBLE), " + (lastTouch ? "TRUE" : "FALSE")
                + ", CAST(" + maxTouches + " AS INT), DESCRIPTOR(event_time))";
    }

    private static PtfHarness harness(long delayMs) {
        return new PtfHarness(Schemas.ATTRIBUTION_EVENTS, "event_time", delayMs);
    }

    /** An impression's decisions: its id as the creative agent's action, so a test can tell them apart. */
    private static Row[] decisions(String impression) {
        return new Row[] {Row.of("creative", impression, 0.5, 3L), Row.of("bid", "x1.0", 0.25, 7L)};
    }

    private static void view(PtfHarness h, String pair, String impression, long t) {
        h.add(t, pair, "c1", null, impression, "s1", t, t, 0, new Double[] {1.0, 2.0}, decisions(impression), null);
    }

    private static void click(PtfHarness h, String pair, String impression, long impTs, long t) {
        h.add(t, pair, "c1", null, impression, "s1", impTs, t, 1, new Double[] {1.0, 2.0}, decisions(impression), null);
    }

    private static void conversion(PtfHarness h, String pair, String id, long t, double value) {
        h.add(t, pair, "c1", id, null, null, null, t, null, null, null, value);
    }

    private static Map<String, Double> credits(List<Row> rows) {
        Map<String, Double> out = new HashMap<>();
        for (Row row : rows) {
            Double before = out.put((String) row.getField("impression_id"), (Double) row.getField("credit"));
            assertEquals(null, before, "one row per impression: " + rows);
        }
        return out;
    }

    @Test
    void creditDecaysWithAgeAndAClickWeighsTheBoost() throws Exception {
        long t = 100L * 86_400_000L;
        PtfHarness h = harness(0);
        view(h, "p", "old", t - HALF_LIFE);
        view(h, "p", "new", t);
        click(h, "p", "new2", t - 5, t); // a click now, impression earlier; weight 2
        conversion(h, "p", "k", t, 7.0);
        Map<String, Double> got = credits(h.run(query(LOOKBACK, HALF_LIFE, false)));
        // weights: old 0.5, new 1 (its view at t), new2 2 (its click at t): total 3.5
        assertEquals(7.0 * 0.5 / 3.5, got.get("old"), 1e-12);
        assertEquals(7.0 * 1.0 / 3.5, got.get("new"), 1e-12);
        assertEquals(7.0 * 2.0 / 3.5, got.get("new2"), 1e-12);
    }

    @Test
    void aTouchExactlyALookbackOldCountsAndOneMillisecondOlderDoesNot() throws Exception {
        long t = 100L * 86_400_000L;
        PtfHarness h = harness(0);
        view(h, "p", "outside", t - LOOKBACK - 1);
        view(h, "p", "edge", t - LOOKBACK);
        conversion(h, "p", "k", t, 3.0);
        assertEquals(Map.of("edge", 3.0), credits(h.run(query(LOOKBACK, HALF_LIFE, false))));
    }

    @Test
    void aViewAndAClickOfOneImpressionGiveOneRowWithItsFeaturesAndDecisions() throws Exception {
        long t = 50L * 86_400_000L;
        PtfHarness h = harness(0);
        view(h, "p", "i", t - 1_000);
        click(h, "p", "i", t - 1_000, t - 500);
        conversion(h, "p", "k", t, 4.0);
        List<Row> rows = h.run(query(LOOKBACK, HALF_LIFE, false));
        assertEquals(1, rows.size(), rows.toString());
        assertEquals(4.0, (Double) rows.get(0).getField("credit"), 1e-12);
        assertArrayEquals(new Double[] {1.0, 2.0}, (Double[]) rows.get(0).getField("features"));
        assertArrayEquals(decisions("i"), (Object[]) rows.get(0).getField("decisions"));
    }

    @Test
    void lastTouchGivesEverythingToTheLatestAndAClickBeatsAViewAtTheSameTime() throws Exception {
        long t = 50L * 86_400_000L;
        PtfHarness h = harness(0);
        view(h, "p", "early", t - 2_000);
        view(h, "p", "view", t - 1_000);
        click(h, "p", "clicked", t - 3_000, t - 1_000);
        conversion(h, "p", "k", t, 5.0);
        assertEquals(Map.of("clicked", 5.0), credits(h.run(query(LOOKBACK, HALF_LIFE, true))));
    }

    @Test
    void touchesThousandsOfHalfLivesOldShareTheValueWithoutNaN() throws Exception {
        long t = 100L * 86_400_000L;
        long halfLife = 1_000L; // a day is 86,400 half-lives
        PtfHarness h = harness(0);
        view(h, "p", "b", t - 86_400_000L - 1_000L);
        view(h, "p", "a", t - 86_400_000L);
        conversion(h, "p", "k", t, 3.0);
        Map<String, Double> got = credits(h.run(query(LOOKBACK, halfLife, false)));
        assertEquals(2.0, got.get("a"), 1e-12);
        assertEquals(1.0, got.get("b"), 1e-12);
    }

    @Test
    void aConversionWaitsForTheWatermarkSoATouchArrivingAfterItCounts() throws Exception {
        long t = 10L * 86_400_000L;
        PtfHarness h = harness(600_000);
        conversion(h, "p", "k", t, 2.0);
        view(h, "p", "after", t - 60_000); // arrives later, within the out-of-orderness
        assertEquals(Map.of("after", 2.0), credits(h.run(query(LOOKBACK, HALF_LIFE, false))));
    }

    @Test
    void aConversionCountsTheMostRecentTouchesUpToTheCapWhateverTheirArrivalOrder() throws Exception {
        long t = 100L * 86_400_000L;
        Map<String, Double> expected = null;
        for (long delay : new long[] {0L, 60_000L}) { // in time order, with the watermark right behind; reversed
            PtfHarness h = harness(delay);
            for (int i = 1; i <= 8; i++) {
                int n = delay == 0 ? i : 9 - i;
                view(h, "p", "v" + n, t - 9_000 + n * 1_000L);
            }
            click(h, "p", "v2", t - 7_000, t - 500); // an old impression's click: a recent touch
            conversion(h, "p", "k", t, 3.0);
            Map<String, Double> got = credits(h.run(query(LOOKBACK, HALF_LIFE, false, 3)));
            // The three latest touches: v8's view (t - 1,000), v7's (t - 2,000), v2's click (t - 500).
            assertEquals(Set.of("v8", "v7", "v2"), got.keySet(), "delay " + delay);
            assertEquals(3.0, got.values().stream().mapToDouble(Double::doubleValue).sum(), 1e-12);
            if (expected == null) {
                expected = got;
            } else {
                assertEquals(expected, got);
            }
        }
    }

    @Test
    void aClickWhoseViewTheCapDroppedStillCarriesItsImpressionsDecisions() throws Exception {
        long t = 100L * 86_400_000L;
        PtfHarness h = harness(0);
        view(h, "p", "clicked", t - 9_000);
        for (int i = 1; i <= 6; i++) {
            view(h, "p", "v" + i, t - 8_000 + i * 1_000L); // the cap of 2 drops "clicked"'s view
        }
        click(h, "p", "clicked", t - 9_000, t - 100); // comes after its view went
        conversion(h, "p", "k", t, 1.0);
        List<Row> rows = h.run(query(LOOKBACK, HALF_LIFE, false, 2));
        assertEquals(Set.of("clicked", "v6"), credits(rows).keySet());
        Row clicked = rows.stream().filter(r -> "clicked".equals(r.getField("impression_id"))).findFirst().orElseThrow();
        assertArrayEquals(decisions("clicked"), (Object[]) clicked.getField("decisions"));
    }

    @Test
    void theExpiryTimerKeepsTouchesStillInsideALookback() throws Exception {
        long lookback = 1_000_000L;
        PtfHarness h = harness(0);
        view(h, "p", "first", 0); // the partition's expiry timer is due at 1,000,000
        view(h, "p", "second", 500_000); // moves the expiry on to 1,500,000
        view(h, "other", "x", 1_100_000); // the watermark passes the first expiry
        conversion(h, "p", "k", 1_200_000, 1.0);
        List<Row> rows = h.run(query(lookback, lookback, false));
        Map<String, Double> got = credits(rows.stream().filter(r -> "k".equals(r.getField("conversion_id"))).collect(Collectors.toList()));
        assertEquals(Map.of("second", 1.0), got);
        assertTrue(rows.stream().allMatch(r -> "k".equals(r.getField("conversion_id"))), rows.toString());
    }
}
