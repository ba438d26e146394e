package adloop.udf;

import java.io.IOException;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code ADLOOP_JSON_LONG(payload, field)}: a top-level integer field of a JSON object, or NULL when
 * the payload is not an object, the field is missing or is not an integer that fits a BIGINT.
 *
 * <p>A streaming read that stops at the field: the sources' event-time column and watermark need
 * {@code ts} of every record before validation (which may reject the record) has run.
 */
public class JsonLong extends ScalarFunction {

    private static final JsonFactory FACTORY = new JsonFactory();

    // The payload as Flink holds it (UTF-8 bytes): no decoding into a Java String per record.
    public Long eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData payload, String field) {
        if (payload == null || field == null) {
            return null;
        }
        try (JsonParser parser = FACTORY.createParser(payload.toBytes())) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            while (parser.nextToken() == JsonToken.FIELD_NAME) {
                String name = parser.currentName();
                JsonToken value = parser.nextToken();
                if (field.equals(name)) {
                    if (value == JsonToken.VALUE_NUMBER_INT
                            && parser.getNumberType() != JsonParser.NumberType.BIG_INTEGER) {
                        return parser.getLongValue();
                    }
                    return null;
                }
                parser.skipChildren();
            }
            return null;
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }
}
