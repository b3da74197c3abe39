/**
 * Test helper: a raw TCP server on 127.0.0.1 that runs a script on every
 * connection, for peers that misbehave (bad proxies, flapping servers,
 * redirecting servers).
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A running raw server. */
export interface RawListener extends AsyncDisposable {
  /** Its port on 127.0.0.1. */
  port: number;
  /** How many connections it accepted. */
  readonly accepted: number;
  /** When each connection was accepted (`performance.now()`). */
  readonly acceptTimes: number[];
}

/**
 * Accepts connections until disposed; `script` runs on each (its errors are
 * ignored: a client that goes away is not the test's failure) and the
 * connection is closed after it.
 */
export function rawListener(
  script: (conn: Deno.Conn, index: number) => Promise<void>,
): RawListener {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const running = new Set<Promise<void>>();
  const acceptTimes: number[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      const index = acceptTimes.length;
      acceptTimes.push(performance.now());
      const task = script(conn, index).catch(() => {}).finally(() => {
        try {
          conn.close();
        } catch {
          // Closed by the script.
        }
        running.delete(task);
      });
      running.add(task);
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get accepted() {
      return acceptTimes.length;
    },
    acceptTimes,
    async [Symbol.asyncDispose]() {
      try {
        listener.close();
      } catch {
        // Closed already.
      }
      await loop;
      await Promise.all(running);
    },
  };
}

/** Reads until the end of an HTTP head (or EOF); returns the text read. */
export async function readHead(conn: Deno.Conn): Promise<string> {
  let text = "";
  const buffer = new Uint8Array(4096);
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n));
  }
  return text;
}

/** Writes all of `text` (or bytes). */
export async function writeText(
  conn: Deno.Conn,
  text: string | Uint8Array,
): Promise<void> {
  const bytes = typeof text === "string" ? encoder.encode(text) : text;
  let written = 0;
  while (written < bytes.length) {
    written += await conn.write(bytes.subarray(written));
  }
}
