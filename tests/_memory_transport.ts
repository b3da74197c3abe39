/**
 * In-memory transports for socket tests: two ends joined by byte streams.
 *
 * @module
 */

import type { Transport } from "../src/transport.ts";

/** One end of an in-memory connection, with a record of what it sent. */
export interface MemoryEnd extends Transport {
  /** Every chunk this end wrote, in order. */
  written: Uint8Array[];
}

function byteStreamPair(written: Uint8Array[]): {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
} {
  let controller!: ReadableByteStreamController;
  let closed = false;
  const readable = new ReadableStream({
    type: "bytes",
    start(c) {
      controller = c;
    },
    cancel() {
      closed = true;
    },
  });
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      written.push(chunk.slice());
      // Copy: the reader takes ownership of what it is given.
      if (!closed) controller.enqueue(chunk.slice());
    },
    close() {
      if (!closed) {
        closed = true;
        controller.close();
        controller.byobRequest?.respond(0);
      }
    },
  });
  return { readable, writable };
}

/**
 * Creates two connected transports: bytes written to one are read from the
 * other. Closing one end's writable ends the other's readable.
 */
export function memoryTransportPair(): [MemoryEnd, MemoryEnd] {
  const aWritten: Uint8Array[] = [];
  const bWritten: Uint8Array[] = [];
  const aToB = byteStreamPair(aWritten);
  const bToA = byteStreamPair(bWritten);
  return [
    { readable: bToA.readable, writable: aToB.writable, written: aWritten },
    { readable: aToB.readable, writable: bToA.writable, written: bWritten },
  ];
}
