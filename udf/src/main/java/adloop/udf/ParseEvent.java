package adloop.udf;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonProcessingException;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.json.JsonReadFeature;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.DeserializationFeature;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.json.JsonMapper;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

/**
 * {@code ADLOOP_PARSE(payload, rules)}: parses an event payload once and checks it against the
 * rules that {@code sql/ingest.py} derives from the contract's JSON schema.
 *
 * <p>Returns {@code (reason, scalars, number_arrays, object_arrays)}: {@code reason} is NULL for a
 * valid payload and a DLQ reason code otherwise (the other fields are then NULL). Scalars are
 * canonical strings that SQL casts to the column types (exact for doubles: Double.toString
 * round-trips). One parse per record instead of one per JSON path is what keeps validation off
 * the job's critical path.
 */
public class ParseEvent extends ScalarFunction {

    private static final ObjectMapper STRICT =
            JsonMapper.builder().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS).build();
    // Only used to tell a NaN/Infinity number apart from otherwise broken JSON.
    private static final ObjectMapper LENIENT = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .build();

    private final Map<String, Rules> rulesCache = new HashMap<>();

    /**
     * Declared non-deterministic so the planner keeps the call in one projection and downstream
     * expressions read its result: merged projections would otherwise inline the call once per
     * field read, parsing the payload a dozen times again.
     */
    @Override
    public boolean isDeterministic() {
        return false;
    }

    @DataTypeHint(
            "ROW<reason STRING, scalars MAP<STRING, STRING>, number_arrays MAP<STRING, ARRAY<DOUBLE>>,"
                    + " object_arrays MAP<STRING, ARRAY<MAP<STRING, STRING>>>>")
    public Row eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData payload, String rules) {
        if (payload == null) {
            return rejected("invalid_json");
        }
        // The payload's UTF-8 bytes, parsed as they are: decoding them into a Java String first
        // cost more than the parse (and bytes that are not UTF-8 are then invalid JSON).
        byte[] json = payload.toBytes();
        JsonNode root;
        try {
            root = STRICT.readTree(json);
        } catch (IOException e) {
            return rejected(nonFinite(json) ? "non_finite_number" : "invalid_json");
        }
        if (root == null || !root.isObject()) {
            return rejected("invalid_json");
        }
        Rules spec = rules(rules);
        JsonNode version = root.get("schema_version");
        if (version == null || !version.isIntegralNumber() || !spec.versions.contains(version.doubleValue())) {
            return rejected("unknown_schema_version");
        }
        Map<String, String> scalars = new HashMap<>();
        scalars.put("schema_version", Long.toString(version.longValue()));
        Map<String, Double[]> numberArrays = new HashMap<>();
        Map<String, Map<String, String>[]> objectArrays = new HashMap<>();
        for (Rules.Field field : spec.fields) {
            JsonNode value = root.get(field.name);
            if (value == null || value.isNull()) {
                if (field.required) {
                    return rejected("missing_field:" + field.name);
                }
                continue;
            }
            String reason;
            if (field.type.equals("array")) {
                reason = checkArray(field, value, numberArrays, objectArrays);
            } else {
                reason = checkScalar(field, field.name, value, scalars);
            }
            if (reason != null) {
                return rejected(reason);
            }
        }
        return Row.of(null, scalars, numberArrays, objectArrays);
    }

    private static Row rejected(String reason) {
        return Row.of(reason, null, null, null);
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
        return rulesCache.computeIfAbsent(text, Rules::parse);
    }

    /** A scalar field's reason code, or NULL after putting its canonical string in {@code out}. */
    private static String checkScalar(Rules.Field field, String path, JsonNode value, Map<String, String> out) {
        String text;
        switch (field.type) {
            case "string":
                if (!value.isTextual()) {
                    return "wrong_type:" + path;
                }
                text = value.textValue();
                if (text.length() < field.minLength) {
                    return "missing_field:" + path;
                }
                if (field.allowed != null && !field.allowed.contains(text)) {
                    return "wrong_type:" + path;
                }
                break;
            case "integer":
                if (!value.isIntegralNumber() || !value.canConvertToLong()) {
                    return "wrong_type:" + path;
                }
                text = Long.toString(value.longValue());
                break;
            case "number":
                if (!value.isNumber()) {
                    return "wrong_type:" + path;
                }
                text = Double.toString(value.doubleValue());
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
        out.put(field.name, text);
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

    private static String checkArray(
            Rules.Field field,
            JsonNode value,
            Map<String, Double[]> numberArrays,
            Map<String, Map<String, String>[]> objectArrays) {
        String path = field.name;
        if (!value.isArray()) {
            return "wrong_type:" + path;
        }
        if (field.items.equals("number")) {
            Double[] numbers = new Double[value.size()];
            for (int i = 0; i < numbers.length; i++) {
                JsonNode item = value.get(i);
                if (!item.isNumber()) {
                    return "wrong_type:" + path;
                }
                numbers[i] = item.doubleValue();
            }
            if (numbers.length < field.minItems) {
                return "missing_field:" + path;
            }
            numberArrays.put(path, numbers);
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
        @SuppressWarnings("unchecked")
        Map<String, String>[] elements = new Map[value.size()];
        for (int i = 0; i < elements.length; i++) {
            elements[i] = new LinkedHashMap<>();
        }
        for (Rules.Field sub : field.fields) {
            for (int i = 0; i < elements.length; i++) {
                JsonNode v = value.get(i).get(sub.name);
                if (v == null || v.isNull()) {
                    continue;
                }
                String reason = checkScalar(sub, path + "." + sub.name, v, elements[i]);
                if (reason != null) {
                    return reason;
                }
            }
        }
        objectArrays.put(path, elements);
        return null;
    }

    /** The validation rules of one topic, as {@code sql/ingest.py} writes them (JSON). */
    static final class Rules {
        final List<Double> versions = new ArrayList<>();
        final List<Field> fields = new ArrayList<>();

        static final class Field {
            String name;
            String type;
            boolean required;
            int minLength;
            Double minimum;
            Double exclusiveMinimum;
            Double maximum;
            List<String> allowed;
            String items;
            int minItems;
            final List<Field> fields = new ArrayList<>();
        }

        static Rules parse(String text) {
            try {
                JsonNode root = STRICT.readTree(text);
                Rules rules = new Rules();
                root.get("versions").forEach(v -> rules.versions.add(v.doubleValue()));
                root.get("fields").forEach(f -> rules.fields.add(field(f)));
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
            node.path("fields").forEach(sub -> f.fields.add(field(sub)));
            return f;
        }

        private static Double number(JsonNode node, String key) {
            JsonNode v = node.get(key);
            return v == null || v.isNull() ? null : v.doubleValue();
        }
    }
}
