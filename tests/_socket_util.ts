/** Helpers for the socket tests (client_test.ts, server_test.ts). */

import { assert } from "@std/assert";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Fails (instead of hanging) when `promise` takes longer than `ms`. */
export async function within<T>(
  ms: number,
  promise: Promise<T>,
  what = "the operation",
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not finish within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads from `conn` until the peer closes (or resets), up to `ms`. */
export async function readUntilClosed(
  conn: Deno.Conn,
  ms = 5000,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const read = async () => {
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionReset) break;
        throw error;
      }
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
  };
  await within(ms, read(), "reading until the server closed");
  const bytes = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/** A raw HTTP exchange: sends `request`, returns the whole response text. */
export async function rawExchange(
  port: number,
  request: string | Uint8Array,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const bytes = typeof request === "string"
      ? encoder.encode(request)
      : request;
    let written = 0;
    while (written < bytes.length) {
      written += await conn.write(bytes.subarray(written));
    }
    return decoder.decode(await readUntilClosed(conn));
  } finally {
    try {
      conn.close();
    } catch {
      // closed
    }
  }
}

/** A valid upgrade request head, with lines replaced or added. */
export function upgradeRequest(
  overrides: Record<string, string | null> = {},
  start = "GET /chat HTTP/1.1",
): string {
  const fields: Record<string, string | null> = {
    Host: "127.0.0.1",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    ...overrides,
  };
  const lines = [start];
  for (const [name, value] of Object.entries(fields)) {
    if (value !== null) lines.push(`${name}: ${value}`);
  }
  return lines.join("\r\n") + "\r\n\r\n";
}

/** The status code of a raw response. */
export function statusOf(response: string): number {
  const match = /^HTTP\/1\.1 (\d{3})/.exec(response);
  if (!match) {
    throw new Error(
      `expected an HTTP/1.1 response, found ${
        JSON.stringify(response.slice(0, 80))
      }`,
    );
  }
  return Number(match[1]);
}

/** A masked client frame (RFC 6455 §5.3), payload below 126 bytes. */
export function maskedFrame(
  opcode: number,
  payload: Uint8Array,
  fin = true,
): Uint8Array {
  assert(payload.length < 126);
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const frame = new Uint8Array(6 + payload.length);
  frame[0] = (fin ? 0x80 : 0) | opcode;
  frame[1] = 0x80 | payload.length;
  frame.set(mask, 2);
  for (let i = 0; i < payload.length; i++) {
    frame[6 + i] = payload[i] ^ mask[i & 3];
  }
  return frame;
}

/** A self-signed certificate for localhost and 127.0.0.1, or undefined. */
export interface TestCertificate {
  cert: string;
  key: string;
}

/**
 * Makes a self-signed certificate with openssl in a temporary directory.
 * Returns undefined when openssl is missing (the caller skips, or fails
 * under CI=true).
 */
export async function makeCertificate(): Promise<TestCertificate | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "wstream_tls_" });
  try {
    let output: Deno.CommandOutput;
    try {
      output = await new Deno.Command("openssl", {
        args: [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=localhost",
          "-addext",
          "subjectAltName=DNS:localhost,IP:127.0.0.1",
          "-addext",
          "basicConstraints=critical,CA:FALSE",
          "-keyout",
          `${dir}/key.pem`,
          "-out",
          `${dir}/cert.pem`,
        ],
        stdout: "null",
        stderr: "piped",
      }).output();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    assert(
      output.success,
      `openssl failed: ${decoder.decode(output.stderr)}`,
    );
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * {@linkcode makeCertificate}, or `undefined` after a one-line skip message
 * when openssl is missing; under CI=true a missing openssl is a failure.
 */
export async function certificateOrSkip(): Promise<
  TestCertificate | undefined
> {
  const certificate = await makeCertificate();
  if (certificate) return certificate;
  const message = "openssl is missing (apt-get install openssl)";
  if (IN_CI) throw new Error(message);
  console.log(`skipped: ${message}`);
  return undefined;
}

/** Whether a missing tool must fail the test (in CI) rather than skip it. */
export const IN_CI = Deno.env.get("CI") === "true";
