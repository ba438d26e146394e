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
                return new Writer() {
                    public void write(JsonBytes out, RowData row, int pos) {
                        out.writeLong(row.getByte(pos));
                    }

                    public void write(JsonBytes out, ArrayData array, int pos) {
                        out.writeLong(array.getByte(pos));
                    }
                };
            case SMALLINT:
                return new Writer() {
                    public void write(JsonBytes out, RowData row, int pos) {
                        out.writeLong(row.getShort(pos));
                    }

                    public void write(JsonBytes out, ArrayData array, int pos) {
                        out.writeLong(array.getShort(pos));
                    }
                };
            case INTEGER:
                return new Writer() {
                    public void write(JsonBytes out, RowData row, int pos) {
                        out.writeLong(row.getInt(pos));
                    }

                    public void write(JsonBytes out, ArrayData array, int pos) {
                        out.writeLong(array.getInt(pos));
                    }
                };
            case BIGINT:
                return new Writer() {
                    public void write(JsonBytes out, RowData row, int pos) {
                        out.writeLong(row.getLong(pos));
                    }

                    public void write(JsonBytes out, ArrayData array, int pos) {
                        out.writeLong(array.getLong(pos));
                    }
                };
            case FLOAT:
                return new Writer() {
                    public void write(JsonBytes out, RowData row, int pos) {
                        writeFloat(out, row.getFloat(pos));
                    }

                    public void write(JsonBytes out, ArrayData array, int pos) {
                        writeFloat(out, array.getFloat(pos));
                    }
                };
            case DOUBLE:
                return new Writer() {
                    public void write(JsonBytes out, RowData row, int pos) {
                        writeDouble(out, row.getDouble(pos));
                    }

                    public void write(JsonBytes out, ArrayData array, int pos) {
                        writeDouble(out, array.getDouble(pos));
                    }
                };
            case ARRAY:
                return new ArrayWriter(forType(((ArrayType) type).getElementType(), path + "[]"));
            case ROW:
                return new RowWriter((RowType) type, path);
            case MAP:
                MapType map = (MapType) type;
                LogicalType key = map.getKeyType();
                if (key.getTypeRoot() != LogicalTypeRoot.VARCHAR && key.getTypeRoot() != LogicalTypeRoot.CHAR) {
                    throw unsupported(type, path);
                }
                return new MapWriter(forType(map.getValueType(), path + "{}"));
            default:
                throw unsupported(type, path);
        }
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
    static void writeDouble(JsonBytes out, double v) {
        if (!out.writeShortDecimal(v)) {
            writeNumber(out, NumberOutput.toString(v, true), Double.isFinite(v));
        }
    }

    // Rare in these tables: the JDK's digits, as Flink's json format writes floats.
    private static void writeFloat(JsonBytes out, float v) {
        writeNumber(out, Float.toString(v), Float.isFinite(v));
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

    private static final class StringWriter implements Writer {
        public void write(JsonBytes out, RowData row, int pos) {
            writeString(out, row.getString(pos));
        }

        public void write(JsonBytes out, ArrayData array, int pos) {
            writeString(out, array.getString(pos));
        }
    }

    private static final class ArrayWriter implements Writer {
        private final Writer element;

        ArrayWriter(Writer element) {
            this.element = element;
        }

        public void write(JsonBytes out, RowData row, int pos) {
            writeArray(out, row.getArray(pos));
        }

        public void write(JsonBytes out, ArrayData array, int pos) {
            writeArray(out, array.getArray(pos));
        }

        private void writeArray(JsonBytes out, ArrayData array) {
            out.write((byte) '[');
            for (int i = 0; i < array.size(); i++) {
                if (i > 0) {
                    out.write((byte) ',');
                }
                if (array.isNullAt(i)) {
                    out.write(NULL);
                } else {
                    element.write(out, array, i);
                }
            }
            out.write((byte) ']');
        }
    }

    private static final class MapWriter implements Writer {
        private final Writer value;

        MapWriter(Writer value) {
            this.value = value;
        }

        public void write(JsonBytes out, RowData row, int pos) {
            writeMap(out, row.getMap(pos));
        }

        public void write(JsonBytes out, ArrayData array, int pos) {
            writeMap(out, array.getMap(pos));
        }

        private void writeMap(JsonBytes out, MapData map) {
            ArrayData keys = map.keyArray();
            ArrayData values = map.valueArray();
            out.write((byte) '{');
            for (int i = 0; i < map.size(); i++) {
                if (i > 0) {
                    out.write((byte) ',');
                }
                writeString(out, keys.getString(i));
                out.write((byte) ':');
                if (values.isNullAt(i)) {
                    out.write(NULL);
                } else {
                    value.write(out, values, i);
                }
            }
            out.write((byte) '}');
        }
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
