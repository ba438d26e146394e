package adloop.format;

import java.io.IOException;

import org.apache.flink.api.common.serialization.BulkWriter;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.core.fs.FSDataOutputStream;
import org.apache.flink.formats.parquet.ParquetFileFormatFactory;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.format.EncodingFormat;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.factories.DynamicTableFactory;
import org.apache.flink.table.types.DataType;

/**
 * {@code 'format' = 'adloop-parquet'}: Flink's Parquet format, writing each file through a buffer.
 *
 * <p>Parquet writes a file's footer in many pieces of a few bytes, and Flink's local-file stream
 * turns each into a {@code write} system call. A replay that fills hundreds of hourly partitions
 * between two checkpoints closes hundreds of files at each one, and those calls were about half of
 * the writer's CPU. Files, options ({@code adloop-parquet.<parquet option>}) and reading are those
 * of the {@code parquet} format, so the files read back with {@code 'format' = 'parquet'}.
 */
public class BufferedParquetFormatFactory extends ParquetFileFormatFactory {

    public static final String IDENTIFIER = "adloop-parquet";

    /** Bytes held per open file: a footer fits, and hundreds of open files cost a few MB. */
    static final int BUFFER_BYTES = 16 * 1024;

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }

    @Override
    public EncodingFormat<BulkWriter.Factory<RowData>> createEncodingFormat(
            DynamicTableFactory.Context context, ReadableConfig formatOptions) {
        EncodingFormat<BulkWriter.Factory<RowData>> parquet = super.createEncodingFormat(context, formatOptions);
        return new EncodingFormat<>() {
            @Override
            public BulkWriter.Factory<RowData> createRuntimeEncoder(
                    DynamicTableSink.Context sinkContext, DataType consumedDataType) {
                return new BufferedWriterFactory(parquet.createRuntimeEncoder(sinkContext, consumedDataType));
            }

            @Override
            public ChangelogMode getChangelogMode() {
                return parquet.getChangelogMode();
            }
        };
    }

    /** Hands the Parquet writer a buffered stream and empties the buffer when the file is done. */
    static final class BufferedWriterFactory implements BulkWriter.Factory<RowData> {

        private static final long serialVersionUID = 1L;

        private final BulkWriter.Factory<RowData> parquet;

        BufferedWriterFactory(BulkWriter.Factory<RowData> parquet) {
            this.parquet = parquet;
        }

        @Override
        public BulkWriter<RowData> create(FSDataOutputStream out) throws IOException {
            BufferedFsDataOutputStream buffered = new BufferedFsDataOutputStream(out, BUFFER_BYTES);
            BulkWriter<RowData> writer = parquet.create(buffered);
            return new BulkWriter<>() {
                @Override
                public void addElement(RowData element) throws IOException {
                    writer.addElement(element);
                }

                @Override
                public void flush() throws IOException {
                    writer.flush();
                    buffered.flush();
                }

                // The file sink closes the target stream itself after finish(), so the buffer
                // must be empty by then; Parquet's close of its own stream does not reach it.
                @Override
                public void finish() throws IOException {
                    writer.finish();
                    buffered.flush();
                }
            };
        }
    }
}
