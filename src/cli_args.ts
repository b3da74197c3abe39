/**
 * The `wstream` command line's arguments: the `--help` text, the options
 * they parse to, and the parser (see cli.ts for what each mode does).
 *
 * @module
 */

/**
 * The text `--help` prints.
 *
 * @example
 * ```ts
 * import { USAGE } from "@wstream/wstream/cli";
 * import { assertStringIncludes } from "@std/assert";
 *
 * assertStringIncludes(USAGE, "--listen <port>");
 * ```
 */
export const USAGE: string = `Usage:
  cli [options] <ws://host:port/path | wss://…>   connect; send stdin lines, print messages
  cli --listen <port> [options]                   serve: echo every message back

Client: each line of stdin is sent as one text message (binary with
--binary); each message received is printed as one line (binary ones as
their raw bytes). At the end of stdin (or Ctrl+C) the socket closes with
1000. Connection events and the close code go to stderr.

Options:
  --protocol <name>        offer (client) or accept (server) a subprotocol;
                           repeat for more, most preferred first
  --header "Name: value"   send a request header (client); repeatable
  --binary                 send stdin lines as binary messages (client)
  --reconnect              reconnect after a lost connection, a server restart
                           (1001, 1012, ...), a refusal or a 5xx/429 answer,
                           with jittered exponential backoff (client)
  --proxy <url>            tunnel through this HTTP proxy (client), e.g.
                           http://user:pass@proxy:3128; without it the
                           HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY
                           environment variables apply
  --no-proxy               connect directly, whatever the environment says
  --listen <port>          serve on this port (0 picks a free one)
  --hostname <address>     the address to listen on (default 127.0.0.1)
  --broadcast              serve: send each message to every connected client
                           instead of echoing it to its sender
  --no-compression         do not negotiate permessage-deflate
  -h, --help               print this help

Exit status: 0 after a normal close (1000, 1001, or no code), 1 when the
connection is refused, the handshake fails or the socket closes with
another code, 2 for bad arguments. With --reconnect: 0 after a close with
1000 (or no code) or Ctrl+C, 1 when it stops on a failure it does not retry
(a 4xx answer, a protocol error, a close such as 1008).`;

/**
 * The parsed command line, as {@linkcode parseCliArgs} returns it.
 *
 * @example
 * ```ts
 * import type { CliOptions } from "@wstream/wstream/cli";
 *
 * const echoServer: CliOptions = {
 *   listen: 9001,
 *   hostname: "127.0.0.1",
 *   protocols: [],
 *   headers: [],
 *   binary: false,
 *   reconnect: false,
 *   broadcast: false,
 *   compression: true,
 *   help: false,
 * };
 * ```
 */
export interface CliOptions {
  /** The URL to connect to (client mode). */
  url?: string;
  /** The port to serve on (server mode). */
  listen?: number;
  /** Where to listen (server mode); default "127.0.0.1". */
  hostname: string;
  /** Subprotocols to offer or accept. */
  protocols: string[];
  /** Request headers (client mode). */
  headers: [string, string][];
  /** Send stdin lines as binary messages. */
  binary: boolean;
  /** Reconnect after transient failures (client mode). */
  reconnect: boolean;
  /**
   * The HTTP proxy (client mode): a URL, `false` for none, or `undefined`
   * for the environment's.
   */
  proxy?: string | false;
  /** Broadcast instead of echo (server mode). */
  broadcast: boolean;
  /** Negotiate permessage-deflate (default true). */
  compression: boolean;
  /** `--help` was given. */
  help: boolean;
}

/**
 * Parses the command line; throws a `TypeError` that says what was wrong.
 *
 * @example
 * ```ts
 * import { parseCliArgs } from "@wstream/wstream/cli";
 * import { assertEquals } from "@std/assert";
 *
 * const options = parseCliArgs(["--protocol", "chat", "ws://127.0.0.1:9001/"]);
 * assertEquals(options.url, "ws://127.0.0.1:9001/");
 * assertEquals(options.protocols, ["chat"]);
 * ```
 *
 * @param args The arguments after the program name.
 * @returns The options.
 */
export function parseCliArgs(args: readonly string[]): CliOptions {
  const options: CliOptions = {
    hostname: "127.0.0.1",
    protocols: [],
    headers: [],
    binary: false,
    reconnect: false,
    broadcast: false,
    compression: true,
    help: false,
  };
  for (let i = 0; i < args.length; i++) {
    let arg = args[i];
    let inlineValue: string | undefined;
    const equals = arg.indexOf("=");
    if (arg.startsWith("--") && equals > 0) {
      inlineValue = arg.slice(equals + 1);
      arg = arg.slice(0, equals);
    }
    const value = (): string => {
      if (inlineValue !== undefined) return inlineValue;
      const next = args[++i];
      if (next === undefined) {
        throw new TypeError(`expected a value after ${arg}, found nothing`);
      }
      return next;
    };
    switch (arg) {
      case "-h":
      case "--help":
        options.help = true;
        break;
      case "--protocol":
        options.protocols.push(value());
        break;
      case "--header": {
        const header = value();
        const colon = header.indexOf(":");
        if (colon <= 0) {
          throw new TypeError(
            `expected --header "Name: value", found ${JSON.stringify(header)}`,
          );
        }
        options.headers.push([
          header.slice(0, colon).trim(),
          header.slice(colon + 1).trim(),
        ]);
        break;
      }
      case "--binary":
        options.binary = true;
        break;
      case "--broadcast":
        options.broadcast = true;
        break;
      case "--reconnect":
        options.reconnect = true;
        break;
      case "--proxy": {
        const url = value();
        if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !url.includes(":")) {
          throw new TypeError(
            `expected --proxy to be a URL such as http://proxy:3128, found ${
              JSON.stringify(url)
            }`,
          );
        }
        options.proxy = url;
        break;
      }
      case "--no-proxy":
        options.proxy = false;
        break;
      case "--no-compression":
        options.compression = false;
        break;
      case "--hostname":
        options.hostname = value();
        break;
      case "--listen": {
        const text = value();
        const port = Number(text);
        if (!/^\d+$/.test(text) || port > 65535) {
          throw new TypeError(
            `expected --listen to be a port from 0 to 65535, found ${
              JSON.stringify(text)
            }`,
          );
        }
        options.listen = port;
        break;
      }
      default:
        if (arg.startsWith("-")) {
          throw new TypeError(`unknown option ${arg} (see --help)`);
        }
        if (options.url !== undefined) {
          throw new TypeError(
            `expected one URL, found ${JSON.stringify(options.url)} and ${
              JSON.stringify(arg)
            }`,
          );
        }
        options.url = arg;
    }
  }
  if (!options.help) requireOneMode(options);
  return options;
}

// A client (a URL) or a server (--listen), never both, never neither.
function requireOneMode(options: CliOptions): void {
  if (options.url === undefined && options.listen === undefined) {
    throw new TypeError(
      "expected a ws:// or wss:// URL to connect to, or --listen <port>",
    );
  }
  if (options.url !== undefined && options.listen !== undefined) {
    throw new TypeError("expected either a URL or --listen, found both");
  }
}
