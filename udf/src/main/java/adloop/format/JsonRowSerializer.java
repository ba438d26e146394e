package adloop.format;

import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.types.logical.RowType;

/** One row to the bytes of one JSON object (see {@link DirectJsonFormatFactory}). */
final class JsonRowSerializer implements SerializationSchema<RowData> {

    private static final long serialVersionUID = 1L;

    private final RowType rowType;
    private transient JsonWriters.Writer writer;
    private transient JsonBytes out;

    JsonRowSerializer(RowType rowType) {
        this.rowType = rowType;
        JsonWriters.forType(rowType, ""); // an unsupported column fails here, at planning
    }

    @Override
    public void open(InitializationContext context) {
        writer = JsonWriters.forType(rowType, "");
        out = new JsonBytes(1024);
    }

    @Override
    public byte[] serialize(RowData row) {
        out.reset();
        writer.write(out, row);
        return out.toByteArray();
    }
}
