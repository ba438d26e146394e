package adloop.udf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Collectors;

import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** {@code ADLOOP_PARSE}: every dead-letter reason, and the typed row of a valid payload. */
class ParseEventTest {

    /** Rules as sql/ingest.py writes them, for a small schema with every kind of check. */
    private static final String RULES =
            "{\"versions\":[1],\"max_bytes\":2000,\"fields\":["
                    + "{\"name\":\"event_id\",\"type\":\"string\",\"required\":true,\"min_length\":1,"
                    + "\"max_length\":16,\"pattern\":\"[A-Za-z0-9._-]+\"},"
                    + "{\"name\":\"ts\",\"type\":\"integer\",\"required\":true,\"minimum\":0},"
                    + "{\"name\":\"kind\",\"type\":\"string\",\"required\":false,\"enum\":[\"a\",\"b\"]},"
                    + "{\"name\":\"price\",\"type\":\"number\",\"required\":false,\"minimum\":0,\"maximum\":100},"
                    + "{\"name\":\"features\",\"type\":\"array\",\"items\":\"number\",\"maximum\":10,\"length\":2},"
                    + "{\"name\":\"decisions\",\"type\":\"array\",\"items\":\"object\",\"required\":true,"
                    + "\"min_items\":1,\"max_items\":2,\"unique_by\":\"agent\",\"fields\":["
                    + "{\"name\":\"agent\",\"type\":\"string\",\"required\":true,\"enum\":[\"x\",\"y\"]},"
                    + "{\"name\":\"propensity\",\"type\":\"number\",\"required\":true,\"exclusive_minimum\":0,"
                    + "\"maximum\":1}]}]}";

    private static final String DECISION = "{\"agent\":\"x\",\"propensity\":0.5}";

    /** A valid payload with {@code extra} fields first (a repeated key then wins in a lenient read). */
    private static String payload(String extra) {
        return "{" + (extra.isEmpty() ? "" : extra + ",") + fields(Map.of()) + "}";
    }

    /** The fields of a valid payload, each value replaced by its {@code overrides} entry. */
    private static String fields(Map<String, String> overrides) {
        Map<String, String> values = new LinkedHashMap<>();
        values.put("schema_version", "1");
        values.put("event_id", "\"e-1\"");
        values.put("ts", "5");
        values.put("price", "2.5");
        values.put("features", "[1,2]");
        values.put("decisions", "[" + DECISION + "]");
        values.putAll(overrides);
        return values.entrySet().stream()
                .map(e -> "\"" + e.getKey() + "\":" + e.getValue())
                .collect(Collectors.joining(","));
    }

    private static String reason(String json) {
        RowData row = new ParseEvent().eval(json == null ? null : StringData.fromString(json), RULES);
        return row.isNullAt(0) ? null : row.getString(0).toString();
    }

    @Test
    void aValidPayloadGivesTypedFields() {
        RowData row = new ParseEvent().eval(StringData.fromString(payload("\"kind\":\"b\"")), RULES);
        assertNull(reason(payload("")));
        assertNull(row.isNullAt(0) ? null : row.getString(0));
        assertEquals(1L, row.getLong(1));
        assertEquals("e-1", row.getString(2).toString());
        assertEquals(5L, row.getLong(3));
        assertEquals("b", row.getString(4).toString());
        assertEquals(2.5, row.getDouble(5));
        assertArrayEquals(new double[] {1.0, 2.0}, row.getArray(6).toDoubleArray());
        ArrayData decisions = row.getArray(7);
        assertEquals(1, decisions.size());
        RowData decision = decisions.getRow(0, 2);
        assertEquals(2, decision.getArity());
        assertEquals("x", decision.getString(0).toString());
        assertEquals(0.5, decision.getDouble(1));
    }

    @Test
    void objectElementsAreTypedRowsOfTheirRuleFields() {
        ParseEvent.Rules rules = ParseEvent.Rules.parse(RULES);
        assertEquals(
                "ARRAY<ROW<`agent` STRING, `propensity` DOUBLE>>",
                rules.outputType().getChildren().get(7).toString());
    }

    @ParameterizedTest(name = "{1}")
    @CsvSource(
            delimiterString = " -> ",
            value = {
                "\"ts\":-1 -> negative_value:ts",
                "\"ts\":\"5\" -> wrong_type:ts",
                "\"ts\":null -> missing_field:ts",
                "\"kind\":\"c\" -> wrong_type:kind",
                "\"price\":100.5 -> price_out_of_range",
                "\"price\":1e400 -> non_finite_number",
                "\"features\":[1] -> wrong_length:features",
                "\"features\":[1,11] -> features_out_of_range",
                "\"features\":[1,\"2\"] -> wrong_type:features",
                "\"event_id\":\"\" -> missing_field:event_id",
                "\"event_id\":\"abcdefghijklmnopq\" -> too_long:event_id",
                "\"event_id\":\"a|b\" -> bad_id:event_id",
                "\"event_id\":7 -> wrong_type:event_id",
                "\"decisions\":[] -> missing_field:decisions",
                "\"decisions\":{} -> wrong_type:decisions",
                "\"decisions\":[1] -> wrong_type:decisions",
                "\"decisions\":[{\"agent\":\"x\"}] -> missing_field:decisions.propensity",
                "\"decisions\":[{\"agent\":\"z\",\"propensity\":0.5}] -> wrong_type:decisions.agent",
                "\"decisions\":[{\"agent\":\"x\",\"propensity\":0}] -> propensity_out_of_range",
                "\"decisions\":[{\"agent\":\"x\",\"propensity\":0.5},{\"agent\":\"x\",\"propensity\":0.5}]"
                        + " -> duplicate_agent:decisions",
                "\"decisions\":[{\"agent\":\"x\",\"propensity\":0.5},{\"agent\":\"y\",\"propensity\":0.5},"
                        + "{\"agent\":\"y\",\"propensity\":0.5}] -> too_many_items:decisions",
            })
    void aFieldThatBreaksARuleHasItsReason(String override, String expected) {
        int colon = override.indexOf("\":");
        String json = "{" + fields(Map.of(override.substring(1, colon), override.substring(colon + 2))) + "}";
        assertEquals(expected, reason(json), json);
    }

    @Test
    void wholePayloadProblemsHaveTheirReasons() {
        assertEquals("invalid_json", reason(null));
        assertEquals("invalid_json", reason(""));
        assertEquals("invalid_json", reason("not json"));
        assertEquals("invalid_json", reason("[" + payload("") + "]"));
        assertEquals("invalid_json", reason(payload("") + " {}"));
        assertEquals("duplicate_key", reason(payload("\"ts\":4")));
        assertEquals("non_finite_number", reason(payload("\"other\":NaN")));
        assertEquals("payload_too_large", reason(payload("\"pad\":\"" + "x".repeat(2_000) + "\"")));
        assertEquals("unknown_schema_version", reason(payload("").replace("\"schema_version\":1", "\"schema_version\":2")));
        assertEquals("unknown_schema_version", reason(payload("").replace("\"schema_version\":1,", "")));
        assertEquals("unknown_schema_version", reason(payload("").replace("\"schema_version\":1", "\"schema_version\":\"1\"")));
        assertEquals("missing_field:ts", reason(payload("").replace("\"ts\":5,", "")));
    }

    @Test
    void bytesThatAreNotUtf8AreInvalidJson() {
        byte[] bad = payload("").getBytes(java.nio.charset.StandardCharsets.UTF_8);
        bad[bad.length - 3] = (byte) 0xff;
        RowData row = new ParseEvent().eval(StringData.fromBytes(bad), RULES);
        assertEquals("invalid_json", row.getString(0).toString());
    }
}
