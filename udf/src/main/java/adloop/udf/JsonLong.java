package adloop.udf;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

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
 * <p>The sources' event-time column and watermark need {@code ts} of every record before
 * validation (which may reject the record) has run, and the watermark generator evaluates it
 * again: a Jackson parser per call was a sixth of the impressions source's CPU. So a byte scanner
 * reads up to the field and checks the JSON grammar on the way, as Jackson's streaming read does;
 * what it does not decide itself (escaped keys, a byte-order mark, deep nesting, malformed JSON)
 * goes to Jackson, so the answer is Jackson's for every payload.
 */
public class JsonLong extends ScalarFunction {

    private static final JsonFactory FACTORY = new JsonFactory();
    private static final int MAX_DEPTH = 64;

    // The scanner's outcomes; FOUND leaves the value in `found` (one instance per task thread).
    private static final int FOUND = 0;
    private static final int NOT_A_LONG = 1;
    private static final int ASK_JACKSON = 2;

    private transient String lastField;
    private transient byte[] lastKey;
    private transient long found;

    // The payload as Flink holds it (UTF-8 bytes): no decoding into a Java String per record.
    public Long eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData payload, String field) {
        if (payload == null || field == null) {
            return null;
        }
        if (!field.equals(lastField)) {
            lastField = field;
            lastKey = field.getBytes(StandardCharsets.UTF_8);
        }
        byte[] json = payload.toBytes();
        int outcome;
        try {
            outcome = scanObject(json, lastKey);
        } catch (ArrayIndexOutOfBoundsException truncated) {
            outcome = ASK_JACKSON;
        }
        switch (outcome) {
            case FOUND:
                return found;
            case NOT_A_LONG:
                return null;
            default:
                return withJackson(json, field);
        }
    }

    /** Reads the members of the top-level object up to {@code key}, checking each value's grammar. */
    private int scanObject(byte[] b, byte[] key) {
        int i = space(b, 0);
        if (b[i] != '{') {
            return ASK_JACKSON;
        }
        i = space(b, i + 1);
        if (b[i] == '}') {
            return NOT_A_LONG;
        }
        while (true) {
            if (b[i] != '"') {
                return ASK_JACKSON;
            }
            int end = stringEnd(b, i);
            if (end < 0) {
                return ASK_JACKSON; // an escaped key (it could spell the field), or not plain ASCII
            }
            boolean match = sameBytes(b, i + 1, end, key);
            i = space(b, end + 1);
            if (b[i] != ':') {
                return ASK_JACKSON;
            }
            i = space(b, i + 1);
            if (match) {
                return readLong(b, i);
            }
            i = skipValue(b, i, 1);
            if (i < 0) {
                return ASK_JACKSON;
            }
            i = space(b, i);
            if (b[i] == '}') {
                return NOT_A_LONG;
            }
            if (b[i] != ',') {
                return ASK_JACKSON;
            }
            i = space(b, i + 1);
        }
    }

    /** An integer token at {@code i} that fits a long; anything else there is NULL, as in Jackson. */
    private int readLong(byte[] b, int i) {
        boolean negative = b[i] == '-';
        int start = negative ? i + 1 : i;
        int j = start;
        long value = 0;
        while (j < b.length && b[j] >= '0' && b[j] <= '9') {
            int digit = b[j] - '0';
            // Accumulate negatively: Long.MIN_VALUE has no positive counterpart.
            if (value < (Long.MIN_VALUE + digit) / 10) {
                return NOT_A_LONG; // a BIG_INTEGER to Jackson
            }
            value = value * 10 - digit;
            j++;
        }
        int digits = j - start;
        if (digits == 0 || (digits > 1 && b[start] == '0')) {
            return NOT_A_LONG; // not a number, or a leading zero: Jackson fails, the call is NULL
        }
        if (j < b.length && (b[j] == '.' || b[j] == 'e' || b[j] == 'E')) {
            return NOT_A_LONG; // a float
        }
        if (!negative && value == Long.MIN_VALUE) {
            return NOT_A_LONG;
        }
        found = negative ? value : -value;
        return FOUND;
    }

    /** The index after the value at {@code i}, or -1 where the grammar breaks (Jackson decides). */
    private static int skipValue(byte[] b, int i, int depth) {
        switch (b[i]) {
            case '"': {
                int end = stringEnd(b, i);
                return end < 0 ? skipEscapedString(b, i) : end + 1;
            }
            case '{':
                return skipContainer(b, i, depth, '}', true);
            case '[':
                return skipContainer(b, i, depth, ']', false);
            case 't':
                return literal(b, i, "true");
            case 'f':
                return literal(b, i, "false");
            case 'n':
                return literal(b, i, "null");
            default:
                return skipNumber(b, i);
        }
    }

    private static int skipContainer(byte[] b, int i, int depth, char close, boolean object) {
        if (depth >= MAX_DEPTH) {
            return -1;
        }
        i = space(b, i + 1);
        if (b[i] == close) {
            return i + 1;
        }
        while (true) {
            if (object) {
                if (b[i] != '"') {
                    return -1;
                }
                i = skipValue(b, i, depth + 1);
                if (i < 0) {
                    return -1;
                }
                i = space(b, i);
                if (b[i] != ':') {
                    return -1;
                }
                i = space(b, i + 1);
            }
            i = skipValue(b, i, depth + 1);
            if (i < 0) {
                return -1;
            }
            i = space(b, i);
            if (b[i] == close) {
                return i + 1;
            }
            if (b[i] != ',') {
                return -1;
            }
            i = space(b, i + 1);
        }
    }

    /**
     * The closing quote of the string at {@code i}; -1 if it has escapes, control characters or
     * non-ASCII bytes (Jackson checks their UTF-8, and malformed UTF-8 makes its answer NULL).
     */
    private static int stringEnd(byte[] b, int i) {
        for (int j = i + 1; ; j++) {
            byte c = b[j];
            if (c == '"') {
                return j;
            }
            if (c == '\\' || c < 0x20) { // bytes are signed: non-ASCII ones are negative
                return -1;
            }
        }
    }

    /** A plain-ASCII string value with escapes, checked the way JSON defines them. */
    private static int skipEscapedString(byte[] b, int i) {
        for (int j = i + 1; ; j++) {
            byte c = b[j];
            if (c == '"') {
                return j + 1;
            }
            if (c < 0x20) {
                return -1;
            }
            if (c == '\\') {
                byte e = b[++j];
                if (e == 'u') {
                    for (int k = 0; k < 4; k++) {
                        if (Character.digit(b[++j], 16) < 0) {
                            return -1;
                        }
                    }
                } else if ("\"\\/bfnrt".indexOf(e) < 0) {
                    return -1;
                }
            }
        }
    }

    private static int skipNumber(byte[] b, int i) {
        int j = b[i] == '-' ? i + 1 : i;
        int intStart = j;
        while (j < b.length && b[j] >= '0' && b[j] <= '9') {
            j++;
        }
        if (j == intStart || (j - intStart > 1 && b[intStart] == '0')) {
            return -1;
        }
        if (j < b.length && b[j] == '.') {
            int fracStart = ++j;
            while (j < b.length && b[j] >= '0' && b[j] <= '9') {
                j++;
            }
            if (j == fracStart) {
                return -1;
            }
        }
        if (j < b.length && (b[j] == 'e' || b[j] == 'E')) {
            j++;
            if (j < b.length && (b[j] == '+' || b[j] == '-')) {
                j++;
            }
            int expStart = j;
            while (j < b.length && b[j] >= '0' && b[j] <= '9') {
                j++;
            }
            if (j == expStart) {
                return -1;
            }
        }
        return j;
    }

    private static int literal(byte[] b, int i, String word) {
        for (int k = 0; k < word.length(); k++) {
            if (b[i + k] != word.charAt(k)) {
                return -1;
            }
        }
        return i + word.length();
    }

    private static int space(byte[] b, int i) {
        while (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
            i++;
        }
        return i;
    }

    private static boolean sameBytes(byte[] b, int from, int to, byte[] key) {
        if (to - from != key.length) {
            return false;
        }
        for (int k = 0; k < key.length; k++) {
            if (b[from + k] != key[k]) {
                return false;
            }
        }
        return true;
    }

    /** The reference reading, for what the scanner leaves open: Jackson's streaming parser. */
    private static Long withJackson(byte[] json, String field) {
        try (JsonParser parser = FACTORY.createParser(json)) {
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
