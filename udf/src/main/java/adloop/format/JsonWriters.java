package adloop.format;

import java.nio.charset.StandardCharsets;
import java.util.List;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.io.NumberOutput;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.MapData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.MapType;
import org.apache.flink.table.types.logical.RowType;

/** A writer per column type, chosen once per sink: no per-value type dispatch or boxing. */
final class JsonWriters {

    private static final byte[] NULL = "null".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] TRUE = "true".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] FALSE = "false".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] COMMA = {','};
    private static final byte[] COLON = {':'};
    private static final byte[] NOTHING = {};

    private JsonWriters() {}

    /** Writes a value that is not null, from the field {@code pos} of a row or an array. */
    interface Writer {
        void write(JsonBytes out, RowData row, int pos);

        void write(JsonBytes out, ArrayData array, int pos);

        /** The whole row (only row writers). */
        default void write(JsonBytes out, RowData row) {
            throw new UnsupportedOperationException();
        }
    }

    /**
     * The writer for {@code type}, at {@code path} ("" for the table's row, "col.field" inside
     * it); a {@link ValidationException} naming the column if there is none.
     */
    static Writer forType(LogicalType type, String path) {
        switch (type.getTypeRoot()) {
            case CHAR:
            case VARCHAR:
                return new StringWriter();
            case BOOLEAN:
                return new Writer() {
                    public void write(JsonBytes out, RowData row, int pos) {
                        out.write(row.getBoolean(pos) ? TRUE : FALSE);
                    }

                    public void write(JsonBytes out, ArrayData array, int pos) {
                        out.write(array.getBoolean(pos) ? TRUE : FALSE);
                    }
                };
            case TINYINT:
                return integer(RowData::getByte, ArrayData::getByte);
            case SMALLINT:
                return integer(RowData::getShort, ArrayData::getShort);
            case INTEGER:
                return integer(RowData::getInt, ArrayData::getInt);
            case BIGINT:
                return integer(RowData::getLong, ArrayData::getLong);
            case FLOAT:
                return floating(RowData::getFloat, ArrayData::getFloat, true);
            case DOUBLE:
                return floating(RowData::getDouble, ArrayData::getDouble, false);
            case ARRAY:
                Writer element = forType(((ArrayType) type).getElementType(), path + "[]");
                return nested(
                        RowData::getArray, ArrayData::getArray, (out, array) -> writeArray(out, array, element));
            case ROW:
                return new RowWriter((RowType) type, path);
            case MAP:
                MapType map = (MapType) type;
                LogicalType key = map.getKeyType();
                if (key.getTypeRoot() != LogicalTypeRoot.VARCHAR && key.getTypeRoot() != LogicalTypeRoot.CHAR) {
                    throw unsupported(type, path);
                }
                Writer value = forType(map.getValueType(), path + "{}");
                return nested(RowData::getMap, ArrayData::getMap, (out, pairs) -> writeMap(out, pairs, value));
            default:
                throw unsupported(type, path);
        }
    }

    // A number from a row field or an array element, widened (any integer fits a long).
    private interface LongFromRow {
        long get(RowData row, int pos);
    }

    private interface LongFromArray {
        long get(ArrayData array, int pos);
    }

    private interface DoubleFromRow {
        double get(RowData row, int pos);
    }

    private interface DoubleFromArray {
        double get(ArrayData array, int pos);
    }

    private static Writer integer(LongFromRow fromRow, LongFromArray fromArray) {
        return new Writer() {
            public void write(JsonBytes out, RowData row, int pos) {
                out.writeLong(fromRow.get(row, pos));
            }

            public void write(JsonBytes out, ArrayData array, int pos) {
                out.writeLong(fromArray.get(array, pos));
            }
        };
    }

    /** {@code isFloat}: a FLOAT column, printed with the JDK's float digits as Flink's format does. */
    private static Writer floating(DoubleFromRow fromRow, DoubleFromArray fromArray, boolean isFloat) {
        return new Writer() {
            public void write(JsonBytes out, RowData row, int pos) {
                writeFloating(out, fromRow.get(row, pos), isFloat);
            }

            public void write(JsonBytes out, ArrayData array, int pos) {
                writeFloating(out, fromArray.get(array, pos), isFloat);
            }
        };
    }

    private interface FromRow<T> {
        T get(RowData row, int pos);
    }

    private interface FromArray<T> {
        T get(ArrayData array, int pos);
    }

    private interface Body<T> {
        void write(JsonBytes out, T value);
    }

    /** An array or a map: read from the row or the array it sits in, then written by {@code body}. */
    private static <T> Writer nested(FromRow<T> fromRow, FromArray<T> fromArray, Body<T> body) {
        return new Writer() {
            public void write(JsonBytes out, RowData row, int pos) {
                body.write(out, fromRow.get(row, pos));
            }

            public void write(JsonBytes out, ArrayData array, int pos) {
                body.write(out, fromArray.get(array, pos));
            }
        };
    }

    private static ValidationException unsupported(LogicalType type, String path) {
        return new ValidationException(String.format(
                "Format '%s' writes strings, numbers, booleans, arrays, rows and maps with string keys;"
                        + " column '%s' is %s. Use 'format' = 'json' for this table.",
                DirectJsonFormatFactory.IDENTIFIER, path, type.asSummaryString()));
    }

    /**
     * The shortest decimal that reads back as {@code v}, in {@code Double.toString}'s layout.
     * Non-finite values as strings ("NaN", "Infinity"), as Jackson writes them by default.
     */
    static void writeFloating(JsonBytes out, double v, boolean isFloat) {
        if (isFloat) {
            // Rare in these tables: the JDK's digits, as Flink's json format writes floats.
            writeNumber(out, Float.toString((float) v), Double.isFinite(v));
        } else if (!out.writeShortDecimal(v)) {
            writeNumber(out, NumberOutput.toString(v, true), Double.isFinite(v));
        }
    }

    private static void writeNumber(JsonBytes out, String text, boolean finite) {
        if (!finite) {
            out.write((byte) '"');
        }
        out.writeAscii(text);
        if (!finite) {
            out.write((byte) '"');
        }
    }

    private static void writeString(JsonBytes out, StringData value) {
        byte[] utf8 = value.toBytes();
        for (byte b : utf8) {
            if (b < 0) {
                // Not plain ASCII: through Flink's decoding, as its json format does, so bytes
                // that are not valid UTF-8 come out as U+FFFD and the output stays valid UTF-8.
                out.writeQuoted(value.toString());
                return;
            }
        }
        out.writeQuoted(utf8);
    }

    /** {@code before}, then element {@code i} of {@code array} or null. */
    private static void writeElement(JsonBytes out, byte[] before, ArrayData array, int i, Writer writer) {
        out.write(before);
        if (array.isNullAt(i)) {
            out.write(NULL);
        } else {
            writer.write(out, array, i);
        }
    }

    private static final class StringWriter implements Writer {
        public void write(JsonBytes out, RowData row, int pos) {
            writeString(out, row.getString(pos));
        }

        public void write(JsonBytes out, ArrayData array, int pos) {
            writeString(out, array.getString(pos));
        }
    }

    private static void writeArray(JsonBytes out, ArrayData array, Writer element) {
        out.write((byte) '[');
        for (int i = 0; i < array.size(); i++) {
            writeElement(out, i > 0 ? COMMA : NOTHING, array, i, element);
        }
        out.write((byte) ']');
    }

    // A map as an object of its keys (strings), as Flink's json format writes it.
    private static void writeMap(JsonBytes out, MapData map, Writer value) {
        ArrayData keys = map.keyArray();
        ArrayData values = map.valueArray();
        out.write((byte) '{');
        for (int i = 0; i < map.size(); i++) {
            if (i > 0) {
                out.write((byte) ',');
            }
            writeString(out, keys.getString(i));
            writeElement(out, COLON, values, i, value);
        }
        out.write((byte) '}');
    }

    private static final class RowWriter implements Writer {
        private final byte[][] names; // each field's `"name":` (with a leading comma after the first)
        private final Writer[] fields;

        RowWriter(RowType type, String path) {
            List<RowType.RowField> rowFields = type.getFields();
            names = new byte[rowFields.size()][];
            fields = new Writer[rowFields.size()];
            for (int i = 0; i < fields.length; i++) {
                RowType.RowField field = rowFields.get(i);
                JsonBytes name = new JsonBytes(field.getName().length() + 4);
                if (i > 0) {
                    name.write((byte) ',');
                }
                name.writeQuoted(field.getName().getBytes(StandardCharsets.UTF_8));
                name.write((byte) ':');
                names[i] = name.toByteArray();
                fields[i] = forType(field.getType(), path.isEmpty() ? field.getName() : path + "." + field.getName());
            }
        }

        public void write(JsonBytes out, RowData row, int pos) {
            write(out, row.getRow(pos, fields.length));
        }

        public void write(JsonBytes out, ArrayData array, int pos) {
            write(out, array.getRow(pos, fields.length));
        }

        @Override
        public void write(JsonBytes out, RowData row) {
            out.write((byte) '{');
            for (int i = 0; i < fields.length; i++) {
                out.write(names[i]);
                if (row.isNullAt(i)) {
                    out.write(NULL);
                } else {
                    fields[i].write(out, row, i);
                }
            }
            out.write((byte) '}');
        }
    }
}
