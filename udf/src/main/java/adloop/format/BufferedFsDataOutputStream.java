package adloop.format;

import java.io.IOException;

import org.apache.flink.core.fs.FSDataOutputStream;

/**
 * A buffer in front of a Flink file stream. {@link #getPos()} counts the buffered bytes, as the
 * Parquet writer records offsets by it; {@link #close()} empties the buffer but leaves the target
 * open, because the file sink owns it (it commits or discards the file).
 */
final class BufferedFsDataOutputStream extends FSDataOutputStream {

    private final FSDataOutputStream target;
    private final byte[] buffer;
    private int count;

    BufferedFsDataOutputStream(FSDataOutputStream target, int bufferBytes) {
        this.target = target;
        this.buffer = new byte[bufferBytes];
    }

    @Override
    public void write(int b) throws IOException {
        if (count == buffer.length) {
            drain();
        }
        buffer[count++] = (byte) b;
    }

    @Override
    public void write(byte[] bytes, int offset, int length) throws IOException {
        if (length >= buffer.length) {
            // Larger than the buffer (a compressed page): straight through, in order.
            drain();
            target.write(bytes, offset, length);
            return;
        }
        if (length > buffer.length - count) {
            drain();
        }
        System.arraycopy(bytes, offset, buffer, count, length);
        count += length;
    }

    @Override
    public long getPos() throws IOException {
        return target.getPos() + count;
    }

    @Override
    public void flush() throws IOException {
        drain();
        target.flush();
    }

    @Override
    public void sync() throws IOException {
        drain();
        target.sync();
    }

    @Override
    public void close() throws IOException {
        flush();
    }

    private void drain() throws IOException {
        if (count > 0) {
            target.write(buffer, 0, count);
            count = 0;
        }
    }
}
