package adloop.udf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.charset.StandardCharsets;

import org.apache.flink.table.data.StringData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** {@code ADLOOP_EVENT_TIME}: the top-level {@code ts} as a streaming JSON read finds it. */
class EventTimeTest {

    private static Long read(String json) {
        return new EventTime().eval(StringData.fromString(json));
    }

    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            value = {
                "{\"ts\": 5, \"a\": 1}|5",
                "{\"d\": [{\"a\": [1, {\"b\": null}], \"c\": \"x\\\"y\"}], \"f\": [1.5e3], \"ok\": true, \"ts\": -42}|-42",
                "{\"t\\u0073\": 7}|7",
                "{\"user\": \"élève\", \"ts\": 3}|3",
                "{\"ts\": 8, \"x\": }|8",
                "{\"ts\": 1, \"ts\": 2}|1",
                "{\"ts\": -9223372036854775808}|-9223372036854775808",
            })
    void readsTheFirstTopLevelTsAndNothingAfterIt(String json, long expected) {
        assertEquals(expected, read(json));
    }

    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            value = {
                "{\"x\": tru, \"ts\": 8}",
                "{\"ts\": 1.5}",
                "{\"ts\": 1e3}",
                "{\"ts\": \"12\"}",
                "{\"ts\": 9223372036854775808}",
                "{\"ts\": 012}",
                "{\"a\": 1}",
                "{\"a\": {\"ts\": 5}}",
                "[1]",
                "{\"a\": [1, 2",
            })
    void isNullWhenTsIsNotAReadableTopLevelLong(String json) {
        assertNull(read(json));
    }

    @Test
    void hostilePayloadsBeforeTsGiveNullAndNoError() {
        String deep = "[".repeat(200_000) + "]".repeat(200_000);
        assertNull(read("{\"a\": " + deep + ", \"ts\": 1}"));
        assertNull(read("{\"a\": 1" + "0".repeat(100_000) + ", \"ts\": 1}"));
        assertNull(read("{\"a\": \"" + "\\u00e9".repeat(100_000) + ", \"ts\": 1}"));
    }

    @Test
    void isNullForEmptyNullAndNonUtf8Payloads() {
        assertNull(read(""));
        assertNull(new EventTime().eval(null));
        byte[] bad = {'{', '"', (byte) 0xff, '"', ':', '1', '}'};
        assertNull(EventTime.read(bad));
        assertEquals(9L, EventTime.read("{\"ts\":9}".getBytes(StandardCharsets.UTF_8)));
    }
}
