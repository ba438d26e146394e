package adloop.udf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.time.Instant;
import java.util.List;
import java.util.stream.Collectors;

import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

/** {@code ADLOOP_CLICK_OUTCOMES} on a MiniCluster: window edges, duplicates, early clicks, timers. */
class ClickOutcomesTest {

    private static final long WINDOW = 3_600_000L;
    private static final String QUERY = query(16);

    private static String query(int maxEarlyClicks) {
        return "SELECT impression_id, ts, user_id, features, decisions, click_ts, rowtime"
                + " FROM ADLOOP_CLICK_OUTCOMES(TABLE events PARTITION BY impression_id,"
                + " CAST(" + WINDOW + " AS BIGINT), CAST(" + maxEarlyClicks + " AS INT), DESCRIPTOR(event_time))";
    }

    private static PtfHarness harness(long delayMs) {
        return new PtfHarness(Schemas.CLICK_EVENTS, "event_time", delayMs);
    }

    private static void impression(PtfHarness h, String id, long t) {
        Row[] decisions = new Row[] {Row.of("creative", "a1", 0.5, 3L)};
        h.add(t, id, 0, t, "u-" + id, "c1", "s1", 0.25, new Double[] {1.0, -2.0}, decisions);
    }

    private static void click(PtfHarness h, String id, long t) {
        h.add(t, id, 1, t, null, null, null, null, null, null);
    }

    private static Row only(List<Row> rows, String id) {
        List<Row> mine = rows.stream().filter(r -> id.equals(r.getField("impression_id"))).collect(Collectors.toList());
        assertEquals(1, mine.size(), "outcomes of " + id + ": " + rows);
        return mine.get(0);
    }

    @Test
    void aClickAtTheWindowEndCountsAndOneAfterItDoesNot() throws Exception {
        PtfHarness h = harness(0);
        impression(h, "edge", 1_000);
        impression(h, "late", 1_000);
        click(h, "edge", 1_000 + WINDOW);
        click(h, "late", 1_000 + WINDOW + 1);
        List<Row> rows = h.run(QUERY);
        assertEquals(2, rows.size(), rows.toString());
        Row edge = only(rows, "edge");
        assertEquals(1_000 + WINDOW, edge.getField("click_ts"));
        assertEquals(Instant.ofEpochMilli(1_000 + WINDOW), edge.getField("rowtime"));
        Row late = only(rows, "late");
        assertNull(late.getField("click_ts"));
        assertEquals(Instant.ofEpochMilli(1_000 + WINDOW), late.getField("rowtime"), "timed at the window end");
    }

    @Test
    void theFirstClickWinsAndLaterOnesAreIgnored() throws Exception {
        PtfHarness h = harness(0);
        impression(h, "i", 1_000);
        click(h, "i", 2_000);
        click(h, "i", 3_000);
        assertEquals(2_000L, only(h.run(QUERY), "i").getField("click_ts"));
    }

    @Test
    void aClickThatArrivesBeforeItsImpressionCountsIfInsideTheWindow() throws Exception {
        PtfHarness h = harness(600_000); // ten minutes of out-of-orderness
        click(h, "early", 5_000);
        click(h, "before", 3_000);
        impression(h, "early", 4_000);
        impression(h, "before", 4_000);
        List<Row> rows = h.run(QUERY);
        assertEquals(5_000L, only(rows, "early").getField("click_ts"));
        assertNull(only(rows, "before").getField("click_ts"), "a click before its impression's time");
    }

    @Test
    void onlyTheFirstEarlyClicksToArriveAreKept() throws Exception {
        for (int cap : new int[] {2, 3}) {
            PtfHarness h = harness(600_000);
            click(h, "i", 500); // before the impression's time: never counts
            click(h, "i", 600);
            click(h, "i", 5_000); // inside the window, but the third early click
            impression(h, "i", 1_000);
            Object clickTs = only(h.run(query(cap)), "i").getField("click_ts");
            assertEquals(cap == 2 ? null : 5_000L, clickTs, "max_early_clicks " + cap);
        }
    }

    @Test
    void aRepeatedImpressionIdInsideTheWindowIsIgnored() throws Exception {
        PtfHarness h = harness(0);
        impression(h, "dup", 1_000);
        impression(h, "dup", 2_000);
        Row row = only(h.run(QUERY), "dup");
        assertEquals(1_000L, row.getField("ts"));
    }

    @Test
    void anUnclickedOutcomeCarriesTheImpressionUnchanged() throws Exception {
        PtfHarness h = harness(0);
        impression(h, "plain", 7_000);
        Row row = only(h.run(QUERY), "plain");
        assertEquals("u-plain", row.getField("user_id"));
        assertArrayEquals(new Double[] {1.0, -2.0}, (Double[]) row.getField("features"));
        Object[] decisions = (Object[]) row.getField("decisions");
        assertEquals(Row.of("creative", "a1", 0.5, 3L), decisions[0]);
    }
}
