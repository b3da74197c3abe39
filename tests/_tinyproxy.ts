/**
 * Test helper: a real HTTP CONNECT proxy (Debian's `tinyproxy`), started on
 * a free loopback port with a generated configuration and stopped by its PID.
 *
 * @module
 */

import { requirePeer } from "./interop/_peers.ts";

export const TINYPROXY = "/usr/bin/tinyproxy";

/** A running tinyproxy. */
export interface Tinyproxy extends AsyncDisposable {
  /** Its port on 127.0.0.1. */
  port: number;
  /** `http://[user:pass@]127.0.0.1:port`. */
  url: string;
  /** Everything it logged so far. */
  log(): Promise<string>;
}

/** What the generated configuration allows. */
export interface TinyproxyOptions {
  /** Require these Basic credentials (tinyproxy's `BasicAuth user pass`). */
  basicAuth?: [user: string, password: string];
  /** The only target ports CONNECT may reach (tinyproxy's `ConnectPort`). */
  connectPorts: number[];
}

/** Whether tinyproxy is installed; skips (or fails under CI=true) if not. */
export async function requireTinyproxy(): Promise<boolean> {
  let available = true;
  try {
    await Deno.stat(TINYPROXY);
  } catch {
    available = false;
  }
  return requirePeer("tinyproxy", available, "apt-get install tinyproxy");
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Starts tinyproxy; resolves once it accepts connections (within 5 s). */
export async function startTinyproxy(
  options: TinyproxyOptions,
): Promise<Tinyproxy> {
  const dir = await Deno.makeTempDir({ prefix: "wstream_tinyproxy_" });
  const port = freePort();
  const logFile = `${dir}/tinyproxy.log`;
  const lines = [
    `Port ${port}`,
    "Listen 127.0.0.1",
    "Timeout 10",
    "MaxClients 50",
    "LogLevel Info",
    `LogFile "${logFile}"`,
    "Allow 127.0.0.1",
    "DisableViaHeader Yes",
    ...options.connectPorts.map((p) => `ConnectPort ${p}`),
  ];
  if (options.basicAuth) {
    lines.push(`BasicAuth ${options.basicAuth[0]} ${options.basicAuth[1]}`);
  }
  await Deno.writeTextFile(`${dir}/tinyproxy.conf`, lines.join("\n") + "\n");
  const child = new Deno.Command(TINYPROXY, {
    args: ["-d", "-c", `${dir}/tinyproxy.conf`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      Deno.kill(child.pid, "SIGTERM");
    } catch {
      // Exited already.
    }
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const started = Date.now();
  while (true) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      break;
    } catch {
      if (Date.now() - started > 5000) {
        await stop();
        throw new Error(`tinyproxy did not listen on port ${port} within 5 s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  const auth = options.basicAuth
    ? `${options.basicAuth[0]}:${options.basicAuth[1]}@`
    : "";
  return {
    port,
    url: `http://${auth}127.0.0.1:${port}`,
    log: () => Deno.readTextFile(logFile).catch(() => ""),
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * The environment a child `deno` needs to find its cache (PATH, HOME,
 * DENO_DIR), and nothing else: no proxy settings of the test machine leak
 * into a test of the proxy environment variables.
 */
export function cacheOnlyEnv(): Record<string, string> {
  return Object.fromEntries(
    ["PATH", "HOME", "DENO_DIR"].flatMap((name) => {
      const value = Deno.env.get(name);
      return value === undefined ? [] : [[name, value]];
    }),
  );
}
