/**
 * Message data for the WHATWG `WebSocket` (websocket.ts) and
 * `WebSocketStream` (websocket_stream.ts): the UTF-8 size a string counts in
 * `bufferedAmount`, the copy `send()` or a write takes of bytes, and the
 * `ArrayBuffer` a binary message is delivered as. The connection's sink
 * (connection_sink.ts) shares its test for binary data.
 *
 * Not exported from `mod.ts`.
 *
 * @module
 */

// The UTF-8 byte length of a string, without encoding it.
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let index = 0; index < text.length; index++) {
    const unit = text.charCodeAt(index);
    if (unit < 0x80) continue;
    if (unit < 0x800) bytes += 1;
    else if (unit >= 0xd800 && unit <= 0xdbff && index + 1 < text.length) {
      const next = text.charCodeAt(index + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        // A surrogate pair: 2 code units, 4 bytes.
        bytes += 2;
        index++;
      } else bytes += 2;
    } else bytes += 2;
  }
  return bytes;
}

export function isBufferSource(data: unknown): data is BufferSource {
  return ArrayBuffer.isView(data) || data instanceof ArrayBuffer ||
    data instanceof SharedArrayBuffer;
}

// A copy: the data is sent as it was when send() or write() was called.
export function copyBytes(data: BufferSource): Uint8Array<ArrayBuffer> {
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      .slice();
  }
  return new Uint8Array(data).slice();
}

// An ArrayBuffer holding exactly the message's bytes.
export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  if (
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength &&
    bytes.buffer instanceof ArrayBuffer
  ) {
    return bytes.buffer;
  }
  return bytes.slice().buffer;
}
