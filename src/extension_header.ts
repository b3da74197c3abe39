/**
 * The `Sec-WebSocket-Extensions` header grammar (RFC 6455 §9.1): a
 * comma-separated list of extensions, each a token followed by
 * `;`-separated parameters whose values are tokens or quoted strings.
 *
 * @module
 */

/** One parameter of an extension: its name and its value (`true` when it has none). */
export type ExtensionParam = [name: string, value: string | true];

/** One element of a `Sec-WebSocket-Extensions` list. */
export interface Extension {
  /** The extension token, lower-cased (`permessage-deflate`). */
  name: string;
  /**
   * The parameters in the order they came, names lower-cased, values as
   * written (quoted strings unquoted). Duplicates are kept so that callers
   * can reject them.
   */
  params: ExtensionParam[];
}

// RFC 7230 §3.2.6: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
// "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Whether `text` is an RFC 7230 token (the only form extension names,
 * parameter names and unquoted values may take, RFC 6455 §9.1).
 *
 * @example
 * ```ts
 * import { isToken } from "./extension_header.ts";
 * import { assert } from "@std/assert";
 *
 * assert(isToken("permessage-deflate"));
 * assert(!isToken("a b"));
 * ```
 *
 * @param text The text to test.
 * @returns `true` when `text` is a non-empty token.
 */
export function isToken(text: string): boolean {
  return TOKEN.test(text);
}

/**
 * Parses a `Sec-WebSocket-Extensions` value (several header lines joined
 * with `, `, as `Headers.get` does) into its extensions.
 *
 * RFC 6455 §9.1: `extension-param = token [ "=" (token | quoted-string) ]`,
 * and a quoted value, once unescaped, must itself be a token.
 *
 * @example
 * ```ts
 * import { parseExtensions } from "./extension_header.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(
 *   parseExtensions('permessage-deflate; client_max_window_bits="10", x-foo'),
 *   [
 *     { name: "permessage-deflate", params: [["client_max_window_bits", "10"]] },
 *     { name: "x-foo", params: [] },
 *   ],
 * );
 * ```
 *
 * @param header The header value.
 * @returns The extensions, in order; empty elements (`a,,b`) are skipped as
 * RFC 7230 §7 allows.
 * @throws {SyntaxError} When the value does not follow the grammar; the
 * message says where and what was expected.
 */
export function parseExtensions(header: string): Extension[] {
  const extensions: Extension[] = [];
  const length = header.length;
  let at = 0;

  const skipSpace = () => {
    while (at < length && (header[at] === " " || header[at] === "\t")) at++;
  };
  const fail = (expected: string): never => {
    const found = at < length ? `"${header[at]}"` : "the end";
    throw new SyntaxError(
      `Invalid Sec-WebSocket-Extensions header "${header}": expected ${expected} at offset ${at}, found ${found}`,
    );
  };
  const readToken = (what: string): string => {
    const start = at;
    while (at < length && TOKEN.test(header[at])) at++;
    if (at === start) fail(what);
    return header.slice(start, at);
  };
  const readQuoted = (): string => {
    at++; // opening quote
    let value = "";
    while (true) {
      if (at >= length) fail('a closing """');
      const char = header[at++];
      if (char === '"') break;
      if (char === "\\") {
        if (at >= length) fail("an escaped character");
        value += header[at++];
      } else {
        value += char;
      }
    }
    // RFC 6455 §9.1: the unescaped quoted-string must conform to `token`.
    if (!isToken(value)) {
      at--;
      fail(`a quoted value that is a token, not "${value}"`);
    }
    return value;
  };

  while (true) {
    skipSpace();
    if (at >= length) break;
    if (header[at] === ",") { // an empty list element
      at++;
      continue;
    }
    const extension: Extension = {
      name: readToken("an extension name").toLowerCase(),
      params: [],
    };
    extensions.push(extension);
    skipSpace();
    while (header[at] === ";") {
      at++;
      skipSpace();
      const name = readToken("a parameter name").toLowerCase();
      skipSpace();
      let value: string | true = true;
      if (header[at] === "=") {
        at++;
        skipSpace();
        value = header[at] === '"'
          ? readQuoted()
          : readToken("a parameter value");
        skipSpace();
      }
      extension.params.push([name, value]);
    }
    if (at >= length) break;
    if (header[at] !== ",") fail('";", "," or the end');
    at++;
  }
  return extensions;
}
