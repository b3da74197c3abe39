/**
 * Which HTTP proxy a WebSocket connection goes through: the `proxy` option
 * of `connect()`, or the environment variables `ALL_PROXY`, `HTTPS_PROXY`,
 * `HTTP_PROXY` and `NO_PROXY`, read the way Deno's `fetch` reads them.
 *
 * @module
 */

import { encodeBase64 } from "./base64.ts";
import { unbracketed } from "./proxy_tunnel.ts";
import { currentRuntime } from "./runtime.ts";

/**
 * An HTTP proxy to open a `CONNECT` tunnel through.
 *
 * @example
 * ```ts
 * import { parseProxyUrl, type ProxyServer } from "./proxy.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const proxy: ProxyServer = parseProxyUrl("http://user:pass@127.0.0.1:3128");
 * assertEquals(proxy.port, 3128);
 * ```
 */
export interface ProxyServer {
  /** The proxy's host name or address (IPv6 without brackets). */
  hostname: string;
  /** The proxy's port (default 80). */
  port: number;
  /** `Proxy-Authorization` value from the URL's credentials, if any. */
  authorization?: string;
  /** Where the setting came from, for error messages ("HTTPS_PROXY", ...). */
  source: string;
}

/** Where proxy settings are read from: the process environment by default. */
export type EnvReader = (name: string) => string | undefined;

// URLs like "proxy:3128" or "127.0.0.1:3128" have no scheme: as Deno's fetch
// does, those mean http.
const HAS_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * Parses a proxy URL. Only `http:` proxies are supported (a `CONNECT`
 * tunnel); a URL without a scheme means `http:`. Credentials in the URL
 * (`http://user:pass@host:3128`, percent-encoded) are sent as Basic
 * `Proxy-Authorization`.
 *
 * @example
 * ```ts
 * import { parseProxyUrl } from "./proxy.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const proxy = parseProxyUrl("proxy.example:3128");
 * assertEquals([proxy.hostname, proxy.port], ["proxy.example", 3128]);
 * assertThrows(() => parseProxyUrl("socks5://127.0.0.1:1080"), TypeError);
 * ```
 *
 * @param value The proxy URL.
 * @param source Where it came from, for error messages.
 * @returns The proxy.
 * @throws {TypeError} when it is not a URL or not an `http:` one.
 */
export function parseProxyUrl(
  value: string | URL,
  source = "the proxy option",
): ProxyServer {
  const text = String(value).trim();
  let url: URL;
  try {
    url = new URL(HAS_SCHEME.test(text) ? text : `http://${text}`);
  } catch {
    throw new TypeError(
      `expected ${source} to be a proxy URL such as "http://proxy:3128", found ${
        JSON.stringify(redact(text))
      }`,
    );
  }
  if (url.protocol !== "http:" || url.hostname === "") {
    throw new TypeError(
      `expected ${source} to be an http: proxy URL such as "http://proxy:3128" (wstream tunnels through HTTP CONNECT; https: and SOCKS proxies are not supported), found ${
        JSON.stringify(redact(url.href))
      }`,
    );
  }
  const proxy: ProxyServer = {
    hostname: unbracketed(url.hostname),
    port: url.port ? Number(url.port) : 80,
    source,
  };
  if (url.username !== "" || url.password !== "") {
    const credentials = `${decodeURIComponent(url.username)}:${
      decodeURIComponent(url.password)
    }`;
    proxy.authorization = `Basic ${
      encodeBase64(new TextEncoder().encode(credentials))
    }`;
  }
  return proxy;
}

/** A URL with its password replaced, fit for an error message. */
function redact(text: string): string {
  return text.replace(/(\/\/[^/@:]*):[^/@]*@/, "$1:***@");
}

/**
 * The proxy for a connection to `target`: none when `option` is `false`,
 * the one `option` names when given (for every host), else the one the
 * environment names, as Deno's `fetch` reads it:
 *
 * - `ALL_PROXY` (any scheme) is checked first, then `HTTPS_PROXY` for
 *   `wss:` or `HTTP_PROXY` for `ws:`; each upper-case name before its
 *   lower-case twin. `HTTP_PROXY` is ignored when `REQUEST_METHOD` is set
 *   (in a CGI program it may come from a request's `Proxy` header).
 * - Not for hosts in `NO_PROXY` (or `no_proxy`): a comma-separated list of
 *   domains (each matches itself and its subdomains; a leading dot changes
 *   nothing), IP addresses, CIDR blocks such as `10.0.0.0/8`, or `*` for
 *   every host. Ports in it are not supported (as in Deno).
 * - A value that is not a URL at all is ignored; one naming a proxy other
 *   than `http:` (such as `socks5:`) throws, rather than connecting
 *   without the proxy the environment asks for.
 *
 * Reading the environment needs `--allow-env`; without that permission no
 * variable is read (and no prompt is shown).
 *
 * @example
 * ```ts
 * import { resolveProxy } from "./proxy.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const env = { HTTPS_PROXY: "http://127.0.0.1:3128", NO_PROXY: "internal.example" };
 * const read = (name: string) => env[name as keyof typeof env];
 * assertEquals(resolveProxy(new URL("wss://a.example/"), undefined, read)?.port, 3128);
 * assertEquals(resolveProxy(new URL("wss://x.internal.example/"), undefined, read), undefined);
 * assertEquals(resolveProxy(new URL("ws://a.example/"), undefined, read), undefined);
 * ```
 *
 * @param target The `ws:` or `wss:` URL to connect to.
 * @param option The `proxy` option: a URL, `false`, or `undefined` for the
 * environment.
 * @param env Reads an environment variable (default: `Deno.env` when
 * permitted, `process.env` on Node and Bun).
 * @returns The proxy, or `undefined` to connect directly.
 */
export function resolveProxy(
  target: URL,
  option: string | URL | false | undefined,
  env: EnvReader = readEnv,
): ProxyServer | undefined {
  if (option === false) return undefined;
  if (option !== undefined) return parseProxyUrl(option);
  const names = [["ALL_PROXY", "all_proxy"]];
  if (target.protocol === "wss:") names.push(["HTTPS_PROXY", "https_proxy"]);
  else if (env("REQUEST_METHOD") === undefined) {
    names.push(["HTTP_PROXY", "http_proxy"]);
  }
  let found: [name: string, value: string] | undefined;
  for (const pair of names) {
    found = firstUsable(pair, env);
    if (found) break;
  }
  if (!found) return undefined;
  const noProxy = env("NO_PROXY") ?? env("no_proxy") ?? "";
  if (matchesNoProxy(target.hostname, noProxy)) return undefined;
  return parseProxyUrl(found[1], found[0]);
}

// The first of the names whose value Deno would take as a proxy URL.
function firstUsable(
  names: string[],
  env: EnvReader,
): [string, string] | undefined {
  for (const name of names) {
    const value = env(name)?.trim();
    if (!value) continue;
    try {
      new URL(HAS_SCHEME.test(value) ? value : `http://${value}`);
    } catch {
      continue;
    }
    return [name, value];
  }
  return undefined;
}

// Without permission to read it (Deno), no proxy from the env.
function readEnv(name: string): string | undefined {
  return currentRuntime().env(name);
}

/**
 * Whether `hostname` (as `URL.hostname` gives it) is in a `NO_PROXY` list:
 * domains match themselves and their subdomains, IPs match exactly, CIDR
 * blocks match the addresses in them, `*` matches everything.
 *
 * @example
 * ```ts
 * import { matchesNoProxy } from "./proxy.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const list = "example.com, .internal, 10.0.0.0/8, ::1";
 * assertEquals(
 *   ["www.example.com", "notexample.com", "a.internal", "10.1.2.3", "[::1]"]
 *     .map((host) => matchesNoProxy(host, list)),
 *   [true, false, true, true, true],
 * );
 * ```
 *
 * @param hostname The host to connect to.
 * @param list The `NO_PROXY` value.
 * @returns `true` when the connection must not use the proxy.
 */
export function matchesNoProxy(hostname: string, list: string): boolean {
  const host = unbracketed(hostname).toLowerCase();
  const address = parseIp(host);
  for (const raw of list.split(",")) {
    const entry = raw.trim().toLowerCase();
    if (entry === "") continue;
    if (entry === "*") return true;
    const slash = entry.indexOf("/");
    const network = parseIp(slash < 0 ? entry : entry.slice(0, slash));
    if (network) {
      if (!address || address.length !== network.length) continue;
      const bits = slash < 0
        ? network.length * 8
        : Number(entry.slice(slash + 1));
      if (inNetwork(address, network, bits)) return true;
      continue;
    }
    if (address) continue;
    const domain = entry.startsWith(".") ? entry.slice(1) : entry;
    if (host === domain || host.endsWith(`.${domain}`)) return true;
  }
  return false;
}

function inNetwork(address: Uint8Array, network: Uint8Array, bits: number) {
  if (!Number.isInteger(bits) || bits < 0 || bits > address.length * 8) {
    return false;
  }
  for (let i = 0; i < address.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((address[i] & mask) !== (network[i] & mask)) return false;
  }
  return true;
}

// An IPv4 (4 bytes) or IPv6 (16 bytes) address, or undefined for a name.
function parseIp(text: string): Uint8Array | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    const parts = text.split(".").map(Number);
    return parts.every((part) => part <= 255)
      ? new Uint8Array(parts)
      : undefined;
  }
  if (!text.includes(":")) return undefined;
  let url: URL;
  try {
    // The URL parser normalizes every IPv6 spelling (::, embedded IPv4).
    url = new URL(`http://[${text}]/`);
  } catch {
    return undefined;
  }
  const normal = url.hostname.slice(1, -1);
  const [head, tail = ""] = normal.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === "" ? [] : tail.split(":");
  const groups = normal.includes("::")
    ? [
      ...headGroups,
      ...Array(8 - headGroups.length - tailGroups.length).fill("0"),
      ...tailGroups,
    ]
    : headGroups;
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    const value = parseInt(group, 16);
    bytes[i * 2] = value >> 8;
    bytes[i * 2 + 1] = value & 0xff;
  });
  return bytes;
}
