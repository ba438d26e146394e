package adloop.udf;

import java.io.IOException;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code ADLOOP_EVENT_TIME(payload)}: the top-level {@code ts} of a JSON object, read with Jackson's
 * streaming parser, or NULL when the payload is not an object, {@code ts} is missing, or is not an
 * integer that fits a BIGINT.
 *
 * <p>The sources' event-time column and watermark need {@code ts} of every record before
 * validation ({@code ADLOOP_PARSE}) runs. The read stops at the first top-level {@code ts}: what
 * follows it is not read, what comes before it must be well-formed. A payload with {@code ts}
 * twice gets the first here and is a dead letter ({@code duplicate_key}) after validation.
 */
public class EventTime extends ScalarFunction {

    private static final JsonFactory FACTORY = new JsonFactory();
    private static final String FIELD = "ts";

    public Long eval(@DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData payload) {
        return payload == null ? null : read(payload.toBytes());
    }

    /** The top-level {@code ts} of {@code json} (UTF-8), or NULL. */
    static Long read(byte[] json) {
        try (JsonParser parser = FACTORY.createParser(json)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            while (parser.nextToken() == JsonToken.FIELD_NAME) {
                String name = parser.currentName();
                JsonToken value = parser.nextToken();
                if (FIELD.equals(name)) {
                    boolean isLong =
                            value == JsonToken.VALUE_NUMBER_INT
                                    && parser.getNumberType() != JsonParser.NumberType.BIG_INTEGER;
                    return isLong ? parser.getLongValue() : null;
                }
                parser.skipChildren();
            }
            return null;
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }
}
