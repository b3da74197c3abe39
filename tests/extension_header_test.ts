import { assertEquals, assertThrows } from "@std/assert";
import { isToken, parseExtensions } from "../src/extension_header.ts";

Deno.test("parseExtensions() reads extensions, parameters and values (RFC 6455 §9.1)", () => {
  const table: [string, ReturnType<typeof parseExtensions>][] = [
    ["", []],
    ["permessage-deflate", [{ name: "permessage-deflate", params: [] }]],
    [
      "permessage-deflate; client_max_window_bits",
      [{
        name: "permessage-deflate",
        params: [["client_max_window_bits", true]],
      }],
    ],
    [
      "permessage-deflate;server_max_window_bits=10;client_max_window_bits",
      [{
        name: "permessage-deflate",
        params: [["server_max_window_bits", "10"], [
          "client_max_window_bits",
          true,
        ]],
      }],
    ],
    [
      ' permessage-deflate ;\tserver_max_window_bits = "10" , x-foo ; a="b\\c"',
      [
        {
          name: "permessage-deflate",
          params: [["server_max_window_bits", "10"]],
        },
        { name: "x-foo", params: [["a", "bc"]] },
      ],
    ],
    [
      "Permessage-Deflate; Server_No_Context_Takeover",
      [{
        name: "permessage-deflate",
        params: [["server_no_context_takeover", true]],
      }],
    ],
    [
      "a, ,b,",
      [{ name: "a", params: [] }, { name: "b", params: [] }],
    ],
    [
      "a; p; p",
      [{ name: "a", params: [["p", true], ["p", true]] }],
    ],
  ];
  for (const [header, expected] of table) {
    assertEquals(parseExtensions(header), expected, header);
  }
});

Deno.test("parseExtensions() throws a SyntaxError saying where the grammar broke", () => {
  const table: [string, string][] = [
    ["permessage-deflate;", "expected a parameter name at offset 19"],
    ["permessage-deflate; a=", "expected a parameter value at offset 22"],
    ['a; b="unterminated', 'expected a closing """'],
    ['a; b="not a token"', "a quoted value that is a token"],
    ['a; b=""', "a quoted value that is a token"],
    ["a b", 'expected ";", "," or the end at offset 2, found "b"'],
    ["a; b=c d", 'expected ";", "," or the end'],
    ["(a)", "expected an extension name at offset 0"],
    ["a; b=c=d", 'expected ";", "," or the end'],
  ];
  for (const [header, message] of table) {
    assertThrows(() => parseExtensions(header), SyntaxError, message);
  }
});

Deno.test("isToken() accepts RFC 7230 tokens only", () => {
  assertEquals(isToken("client_max_window_bits"), true);
  assertEquals(isToken("!#$%&'*+-.^_`|~09azAZ"), true);
  for (const text of ["", "a b", "a,b", "a;b", 'a"', "a=b", "é"]) {
    assertEquals(isToken(text), false, text);
  }
});
