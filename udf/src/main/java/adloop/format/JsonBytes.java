package adloop.format;

import java.util.Arrays;

/** A growable byte buffer with the few JSON pieces the writers need. */
final class JsonBytes {

    private static final byte[] HEX = "0123456789ABCDEF".getBytes();

    private byte[] bytes;
    private int size;

    JsonBytes(int capacity) {
        bytes = new byte[capacity];
    }

    void reset() {
        size = 0;
    }

    byte[] toByteArray() {
        return Arrays.copyOf(bytes, size);
    }

    void write(byte b) {
        ensure(1);
        bytes[size++] = b;
    }

    void write(byte[] b) {
        ensure(b.length);
        System.arraycopy(b, 0, bytes, size, b.length);
        size += b.length;
    }

    /** An ASCII-only string (a number's text). */
    void writeAscii(String s) {
        int n = s.length();
        ensure(n);
        for (int i = 0; i < n; i++) {
            bytes[size++] = (byte) s.charAt(i);
        }
    }

    void writeLong(long v) {
        writeAscii(Long.toString(v));
    }

    /**
     * Writes {@code v} if it is 0 or has at most six decimals and a magnitude in [0.001, 10^7)
     * (prices, propensities, rounded features), where {@code Double.toString} uses plain notation;
     * returns false, having written nothing, otherwise. Below 2^33 doubles are closer than 10^-6,
     * so the only decimal with at most six places that reads back as {@code v} is {@code n / 10^6}
     * with {@code n = round(v * 10^6)}, and without its trailing zeros it is the shortest one.
     */
    boolean writeShortDecimal(double v) {
        if (v == 0.0) {
            writeAscii(Double.doubleToRawLongBits(v) == 0L ? "0.0" : "-0.0");
            return true;
        }
        double magnitude = Math.abs(v);
        if (!(magnitude >= 1e-3 && magnitude < 1e7)) {
            return false;
        }
        long micros = Math.round(magnitude * 1e6);
        if (micros / 1e6 != magnitude) {
            return false;
        }
        if (v < 0) {
            write((byte) '-');
        }
        writeLong(micros / 1_000_000);
        int fraction = (int) (micros % 1_000_000);
        int digits = 6;
        while (digits > 1 && fraction % 10 == 0) {
            fraction /= 10;
            digits--;
        }
        ensure(digits + 1);
        bytes[size++] = '.';
        for (int i = digits - 1; i >= 0; i--) {
            bytes[size + i] = (byte) ('0' + fraction % 10);
            fraction /= 10;
        }
        size += digits;
        return true;
    }

    /**
     * UTF-8 text as a JSON string. Escapes as Jackson does by default: {@code "} and {@code \},
     * control characters as their short escape or as u00XX after a backslash; other bytes go as they are.
     */
    void writeQuoted(byte[] utf8) {
        ensure(utf8.length + 2); // enough unless something needs escaping
        bytes[size++] = '"';
        for (byte b : utf8) {
            if (b < 0 || (b >= 0x20 && b != '"' && b != '\\')) { // non-ASCII bytes are negative
                ensure(1);
                bytes[size++] = b;
            } else {
                writeEscape(b);
            }
        }
        write((byte) '"');
    }

    /**
     * Text with non-ASCII characters as a JSON string: UTF-8, except that each half of a
     * surrogate pair (characters beyond U+FFFF) is escaped, as Jackson writes them by default.
     */
    void writeQuoted(String text) {
        write((byte) '"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            ensure(6);
            if (c < 0x80) {
                if (c >= 0x20 && c != '"' && c != '\\') {
                    bytes[size++] = (byte) c;
                } else {
                    writeEscape((byte) c);
                }
            } else if (c < 0x800) {
                bytes[size++] = (byte) (0xC0 | (c >> 6));
                bytes[size++] = (byte) (0x80 | (c & 0x3F));
            } else if (Character.isSurrogate(c)) {
                writeUnicodeEscape(c);
            } else {
                bytes[size++] = (byte) (0xE0 | (c >> 12));
                bytes[size++] = (byte) (0x80 | ((c >> 6) & 0x3F));
                bytes[size++] = (byte) (0x80 | (c & 0x3F));
            }
        }
        write((byte) '"');
    }

    /** Backslash, u and four upper-case hex digits, as Jackson writes them. */
    private void writeUnicodeEscape(int c) {
        ensure(6);
        bytes[size++] = '\\';
        bytes[size++] = 'u';
        for (int shift = 12; shift >= 0; shift -= 4) {
            bytes[size++] = HEX[(c >> shift) & 0xF];
        }
    }

    private void writeEscape(byte b) {
        byte letter;
        switch (b) {
            case '"':
            case '\\':
                letter = b;
                break;
            case '\b':
                letter = 'b';
                break;
            case '\t':
                letter = 't';
                break;
            case '\f':
                letter = 'f';
                break;
            case '\n':
                letter = 'n';
                break;
            case '\r':
                letter = 'r';
                break;
            default:
                writeUnicodeEscape(b);
                return;
        }
        ensure(2);
        bytes[size++] = '\\';
        bytes[size++] = letter;
    }

    private void ensure(int more) {
        if (size + more > bytes.length) {
            bytes = Arrays.copyOf(bytes, Math.max(bytes.length * 2, size + more));
        }
    }
}
