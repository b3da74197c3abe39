/**
 * Test helper: a raw WebSocket peer on a TCP connection, for tests that
 * check frame by frame what a socket sent (frames in are written by hand).
 *
 * @module
 */

import { assertMatch } from "@std/assert";
import type { Frame } from "../src/frame.ts";
import { FrameDecoder } from "../src/frame_decoder.ts";
import { concat } from "./_codec_util.ts";
import { writeText } from "./_raw_listener.ts";
import { upgradeRequest, within } from "./_socket_util.ts";

const decoder = new TextDecoder();
const HEAD_END = [13, 10, 13, 10];

/** A raw peer: bytes out as given, the other end's frames decoded. */
export interface RawPeer {
  /** Writes all of `bytes`. */
  send(bytes: Uint8Array): Promise<void>;
  /** Resolves once the other end's Close arrived. */
  closeReceived: Promise<void>;
  /** Every frame the other end sent, once it ended the connection. */
  frames: Promise<Frame[]>;
}

/** Upgrades a connection to a server on 127.0.0.1 by hand. */
export async function rawClient(
  port: number,
  path = "/chat",
): Promise<RawPeer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeText(conn, upgradeRequest({}, `GET ${path} HTTP/1.1`));
  return rawFrames(conn, "client", await readHeadBytes(conn));
}

/** Reads a 101 response's head; returns the bytes read after it. */
export async function readHeadBytes(conn: Deno.Conn): Promise<Uint8Array> {
  let received: Uint8Array = new Uint8Array(0);
  const buffer = new Uint8Array(4096);
  while (true) {
    const end = indexOfHeadEnd(received);
    if (end >= 0) {
      assertMatch(
        decoder.decode(received.subarray(0, end)),
        /^HTTP\/1\.1 101 /,
      );
      return received.subarray(end + HEAD_END.length);
    }
    const n = await conn.read(buffer);
    if (n === null) throw new Error("the server ended before its 101");
    received = concat([received, buffer.subarray(0, n)]);
  }
}

function indexOfHeadEnd(bytes: Uint8Array): number {
  outer: for (let i = 0; i + HEAD_END.length <= bytes.length; i++) {
    for (let j = 0; j < HEAD_END.length; j++) {
      if (bytes[i + j] !== HEAD_END[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/**
 * Decodes the frames `conn` receives (after `leftover`, bytes read with
 * the head) until the other end ends it; `role` is this end's.
 */
export function rawFrames(
  conn: Deno.Conn,
  role: "client" | "server",
  leftover: Uint8Array,
): RawPeer {
  const frameDecoder = new FrameDecoder({ role });
  const frames: Frame[] = [];
  const closeReceived = Promise.withResolvers<void>();
  const onFrame = (frame: Frame) => {
    frames.push({ ...frame, payload: frame.payload.slice() });
    if (frame.opcode === 0x8) closeReceived.resolve();
  };
  frameDecoder.decode(leftover, onFrame);
  const read = async () => {
    const buffer = new Uint8Array(256 * 1024);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        frameDecoder.decode(buffer.subarray(0, n), onFrame);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
    } finally {
      conn.close();
    }
    return frames;
  };
  return {
    send: (bytes) => writeText(conn, bytes),
    closeReceived: closeReceived.promise,
    frames: within(10_000, read(), "reading the other end's frames"),
  };
}

/**
 * Frames as short lines: "text bye", "binary 10", "close 1001"; a frame
 * that does not end its message says "fin=false".
 */
export function describeFrames(frames: Frame[]): string[] {
  return frames.map((frame) => {
    const unfinished = frame.fin ? "" : " fin=false";
    switch (frame.opcode) {
      case 0x8:
        return `close ${(frame.payload[0] << 8) | frame.payload[1]}`;
      case 0x1:
        return `text ${decoder.decode(frame.payload)}${unfinished}`;
      case 0x2:
        return `binary ${frame.payload.length}${unfinished}`;
      default:
        return `opcode ${frame.opcode} ${frame.payload.length}${unfinished}`;
    }
  });
}
