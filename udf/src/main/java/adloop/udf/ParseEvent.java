package adloop.udf;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonProcessingException;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.StreamReadFeature;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.json.JsonReadFeature;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.DeserializationFeature;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.json.JsonMapper;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.data.GenericArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.inference.StaticArgument;
import org.apache.flink.table.types.inference.TypeInference;

/**
 * {@code ADLOOP_PARSE(payload, rules)}: parses an event payload once and checks it against the
 * rules that {@code sql/ingest.py} derives from the contract's JSON schema.
 *
 * <p>Returns a row typed from the rules (a literal): {@code reason}, {@code schema_version} and one
 * field per rule field, in rule order: STRING, BIGINT (integer) or DOUBLE (number) for a scalar,
 * {@code ARRAY<DOUBLE>} for an array of numbers, {@code ARRAY<ROW<...>>} for an array of objects
 * (a ROW of the element's rule fields, typed the same way). {@code reason} is NULL for a valid
 * payload and a DLQ reason code otherwise (the other fields are then NULL). The row is built in
 * Flink's internal formats: with Java objects, converting them was a fifth of the impressions'
 * source task; typed elements spare the string maps that SQL looked up and cast back. One parse per record instead of
 * one per JSON path is what keeps validation off the job's critical path.
 */
public class ParseEvent extends ScalarFunction {

    // A key given twice is refused: readers that keep the first and readers that keep the last
    // (event time is read before the parse) would otherwise see two different events.
    private static final ObjectMapper STRICT = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .build();
    // Only used to tell a NaN/Infinity number apart from otherwise broken JSON.
    private static final ObjectMapper LENIENT = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .build();

    // Transient: the planner may serialise the function after type inference filled it.
    private transient Map<String, Rules> rulesCache;

    /**
     * Declared non-deterministic so the planner keeps the call in one projection and downstream
     * expressions read its result: merged projections would otherwise inline the call once per
     * field read, parsing the payload a dozen times again.
     */
    @Override
    public boolean isDeterministic() {
        return false;
    }

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        return TypeInference.newBuilder()
                .staticArguments(
                        StaticArgument.scalar("payload", DataTypes.STRING().bridgedTo(StringData.class), false),
                        StaticArgument.scalar("rules", DataTypes.STRING(), false))
                .outputTypeStrategy(call -> {
                    if (!call.isArgumentLiteral(1)) {
                        throw call.newValidationError("ADLOOP_PARSE: the rules must be a string literal");
                    }
                    Optional<String> text = call.getArgumentValue(1, String.class);
                    return text.map(rules -> rules(rules).outputType());
                })
                .build();
    }

    public RowData eval(StringData payload, String rules) {
        Rules spec = rules(rules);
        if (payload == null) {
            return spec.rejected("invalid_json");
        }
        // The payload's UTF-8 bytes, parsed as they are: decoding them into a Java String first
        // cost more than the parse (and bytes that are not UTF-8 are then invalid JSON).
        byte[] json = payload.toBytes();
        if (spec.maxBytes > 0 && json.length > spec.maxBytes) {
            return spec.rejected("payload_too_large");
        }
        JsonNode root;
        try {
            root = STRICT.readTree(json);
        } catch (IOException e) {
            if (e.getMessage() != null && e.getMessage().startsWith("Duplicate field")) {
                return spec.rejected("duplicate_key");
            }
            return spec.rejected(nonFinite(json) ? "non_finite_number" : "invalid_json");
        }
        if (root == null || !root.isObject()) {
            return spec.rejected("invalid_json");
        }
        JsonNode version = root.get("schema_version");
        if (version == null || !version.isIntegralNumber() || !spec.versions.contains(version.doubleValue())) {
            return spec.rejected("unknown_schema_version");
        }
        GenericRowData out = new GenericRowData(Rules.FIRST_FIELD + spec.fields.size());
        out.setField(Rules.SCHEMA_VERSION, version.longValue());
        Object[] parsed = new Object[1];
        for (int i = 0; i < spec.fields.size(); i++) {
            Rules.Field field = spec.fields.get(i);
            JsonNode value = root.get(field.name);
            if (value == null || value.isNull()) {
                if (field.required) {
                    return spec.rejected("missing_field:" + field.name);
                }
                continue;
            }
            String reason = field.type.equals("array")
                    ? checkArray(field, value, parsed)
                    : checkScalar(field, field.name, value, parsed);
            if (reason != null) {
                return spec.rejected(reason);
            }
            out.setField(Rules.FIRST_FIELD + i, parsed[0]);
        }
        return out;
    }

    private static boolean nonFinite(byte[] payload) {
        try {
            LENIENT.readTree(payload);
            return true; // parses once NaN/Infinity are allowed: that was the problem
        } catch (IOException e) {
            return false;
        }
    }

    private Rules rules(String text) {
        if (rulesCache == null) {
            rulesCache = new HashMap<>();
        }
        return rulesCache.computeIfAbsent(text, Rules::parse);
    }

    /**
     * A scalar field's reason code, or NULL after putting its value in {@code out[0]}: StringData,
     * Long or Double.
     */
    private static String checkScalar(Rules.Field field, String path, JsonNode value, Object[] out) {
        Object parsed;
        switch (field.type) {
            case "string":
                if (!value.isTextual()) {
                    return "wrong_type:" + path;
                }
                String text = value.textValue();
                if (text.length() < field.minLength) {
                    return "missing_field:" + path;
                }
                if (field.allowed != null && !field.allowed.contains(text)) {
                    return "wrong_type:" + path;
                }
                if (field.maxLength >= 0 && text.length() > field.maxLength) {
                    return "too_long:" + path;
                }
                if (field.pattern != null && !field.pattern.matcher(text).matches()) {
                    return "bad_id:" + path;
                }
                parsed = StringData.fromString(text);
                break;
            case "integer":
                if (!value.isIntegralNumber() || !value.canConvertToLong()) {
                    return "wrong_type:" + path;
                }
                long whole = value.longValue();
                parsed = whole;
                break;
            case "number":
                if (!value.isNumber()) {
                    return "wrong_type:" + path;
                }
                double x = value.doubleValue();
                if (!Double.isFinite(x)) {
                    return "non_finite_number"; // e.g. 1e400, which Jackson reads as Infinity
                }
                parsed = x;
                break;
            default:
                throw new IllegalArgumentException("ADLOOP_PARSE: unsupported type " + field.type + " of " + path);
        }
        if (value.isNumber()) {
            String reason = checkRange(field, path, value.doubleValue());
            if (reason != null) {
                return reason;
            }
        }
        out[0] = parsed;
        return null;
    }

    private static String checkRange(Rules.Field field, String path, double x) {
        boolean below = field.exclusiveMinimum != null && x <= field.exclusiveMinimum;
        boolean above = field.maximum != null && x > field.maximum;
        if (below || above) {
            return field.name + "_out_of_range";
        }
        if (field.minimum != null && x < field.minimum) {
            return "negative_value:" + path;
        }
        return null;
    }

    /** An array field's reason code, or NULL after putting its internal array in {@code out[0]}. */
    private static String checkArray(Rules.Field field, JsonNode value, Object[] out) {
        String path = field.name;
        if (!value.isArray()) {
            return "wrong_type:" + path;
        }
        if (field.length >= 0 && value.size() != field.length) {
            return "wrong_length:" + path;
        }
        if (field.maxItems >= 0 && value.size() > field.maxItems) {
            return "too_many_items:" + path;
        }
        if (field.items.equals("number")) {
            double[] numbers = new double[value.size()];
            for (int i = 0; i < numbers.length; i++) {
                JsonNode item = value.get(i);
                if (!item.isNumber()) {
                    return "wrong_type:" + path;
                }
                numbers[i] = item.doubleValue();
                if (!Double.isFinite(numbers[i])) {
                    return "non_finite_number";
                }
                if (field.maximum != null && Math.abs(numbers[i]) > field.maximum) {
                    return field.name + "_out_of_range";
                }
            }
            if (numbers.length < field.minItems) {
                return "missing_field:" + path;
            }
            out[0] = new GenericArrayData(numbers);
            return null;
        }
        if (value.size() < field.minItems) {
            return "missing_field:" + path;
        }
        for (JsonNode item : value) {
            if (!item.isObject()) {
                return "wrong_type:" + path;
            }
        }
        // Field by field across the elements: every element's missing fields, then types, then ranges.
        for (Rules.Field sub : field.fields) {
            for (JsonNode item : value) {
                JsonNode v = item.get(sub.name);
                if (sub.required && (v == null || v.isNull())) {
                    return "missing_field:" + path + "." + sub.name;
                }
            }
        }
        GenericRowData[] elements = new GenericRowData[value.size()];
        for (int i = 0; i < elements.length; i++) {
            elements[i] = new GenericRowData(field.fields.size());
        }
        Object[] parsed = new Object[1];
        for (int f = 0; f < field.fields.size(); f++) {
            Rules.Field sub = field.fields.get(f);
            for (int i = 0; i < elements.length; i++) {
                JsonNode v = value.get(i).get(sub.name);
                if (v == null || v.isNull()) {
                    continue;
                }
                String reason = checkScalar(sub, path + "." + sub.name, v, parsed);
                if (reason != null) {
                    return reason;
                }
                elements[i].setField(f, parsed[0]);
            }
        }
        if (field.uniqueBy >= 0) {
            Set<Object> seen = new HashSet<>();
            for (GenericRowData element : elements) {
                Object key = element.getField(field.uniqueBy);
                if (key != null && !seen.add(key)) {
                    return "duplicate_" + field.fields.get(field.uniqueBy).name + ":" + path;
                }
            }
        }
        out[0] = new GenericArrayData(elements);
        return null;
    }

    /** The validation rules of one topic, as {@code sql/ingest.py} writes them (JSON). */
    static final class Rules {
        // Positions in the output row: the rule fields follow these two.
        static final int REASON = 0;
        static final int SCHEMA_VERSION = 1;
        static final int FIRST_FIELD = 2;

        final List<Double> versions = new ArrayList<>();
        final List<Field> fields = new ArrayList<>();
        /** Payloads longer than this many bytes are rejected unparsed (0: no limit). */
        int maxBytes;

        /** The output row: reason, schema_version, then each field by its JSON type. */
        DataType outputType() {
            List<DataTypes.Field> columns = new ArrayList<>();
            columns.add(DataTypes.FIELD("reason", DataTypes.STRING()));
            columns.add(DataTypes.FIELD("schema_version", DataTypes.BIGINT()));
            for (Field field : fields) {
                columns.add(DataTypes.FIELD(field.name, field.dataType()));
            }
            return DataTypes.ROW(columns).bridgedTo(RowData.class);
        }

        /** The row of a payload rejected for {@code reason}: every other field NULL. */
        RowData rejected(String reason) {
            GenericRowData row = new GenericRowData(FIRST_FIELD + fields.size());
            row.setField(REASON, StringData.fromString(reason));
            return row;
        }

        static final class Field {
            String name;
            String type;
            boolean required;
            int minLength;
            int maxLength;
            Double minimum;
            Double exclusiveMinimum;
            Double maximum;
            List<String> allowed;
            Pattern pattern;
            String items;
            int minItems;
            /** An array's exact length and its most elements (-1: any). */
            int length;
            int maxItems;
            /** The position of an object array's field whose value no two elements may share (-1: none). */
            int uniqueBy = -1;
            final List<Field> fields = new ArrayList<>();

            DataType dataType() {
                switch (type) {
                    case "string":
                        return DataTypes.STRING();
                    case "integer":
                        return DataTypes.BIGINT();
                    case "number":
                        return DataTypes.DOUBLE();
                    case "array":
                        if (items.equals("number")) {
                            return DataTypes.ARRAY(DataTypes.DOUBLE());
                        }
                        List<DataTypes.Field> element = new ArrayList<>();
                        for (Field sub : fields) {
                            element.add(DataTypes.FIELD(sub.name, sub.dataType()));
                        }
                        return DataTypes.ARRAY(DataTypes.ROW(element));
                    default:
                        throw new IllegalArgumentException("ADLOOP_PARSE: unsupported type " + type + " of " + name);
                }
            }
        }

        static Rules parse(String text) {
            try {
                JsonNode root = STRICT.readTree(text);
                Rules rules = new Rules();
                root.get("versions").forEach(v -> rules.versions.add(v.doubleValue()));
                root.get("fields").forEach(f -> rules.fields.add(field(f)));
                rules.maxBytes = root.path("max_bytes").asInt(0);
                return rules;
            } catch (JsonProcessingException | RuntimeException e) {
                throw new IllegalArgumentException("ADLOOP_PARSE: rules are not valid: " + text, e);
            }
        }

        private static Field field(JsonNode node) {
            Field f = new Field();
            f.name = node.get("name").textValue();
            f.type = node.get("type").textValue();
            f.required = node.path("required").asBoolean(false);
            f.minLength = node.path("min_length").asInt(0);
            f.maxLength = node.path("max_length").asInt(-1);
            f.minimum = number(node, "minimum");
            f.exclusiveMinimum = number(node, "exclusive_minimum");
            f.maximum = number(node, "maximum");
            if (node.has("enum")) {
                f.allowed = new ArrayList<>();
                for (JsonNode v : node.get("enum")) {
                    f.allowed.add(v.textValue());
                }
            }
            f.items = node.path("items").asText("");
            f.minItems = node.path("min_items").asInt(0);
            f.length = node.path("length").asInt(-1);
            f.maxItems = node.path("max_items").asInt(-1);
            f.pattern = node.has("pattern") ? Pattern.compile(node.get("pattern").textValue()) : null;
            node.path("fields").forEach(sub -> f.fields.add(field(sub)));
            if (node.has("unique_by")) {
                String unique = node.get("unique_by").textValue();
                for (int i = 0; i < f.fields.size(); i++) {
                    if (f.fields.get(i).name.equals(unique)) {
                        f.uniqueBy = i;
                    }
                }
                if (f.uniqueBy < 0) {
                    throw new IllegalArgumentException("unique_by names no field of " + f.name + ": " + unique);
                }
            }
            return f;
        }

        private static Double number(JsonNode node, String key) {
            JsonNode v = node.get(key);
            return v == null || v.isNull() ? null : v.doubleValue();
        }
    }
}
