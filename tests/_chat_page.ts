/**
 * Test helper: driving the chat example's page in Chromium.
 *
 * @module
 */

import type { BrowserPage } from "./interop/_peers.ts";

/** The part of a playwright-core `Page` this test drives beyond BrowserPage. */
export interface ChatPage extends BrowserPage {
  fill(selector: string, value: string): Promise<void>;
  press(selector: string, key: string): Promise<void>;
  click(selector: string): Promise<void>;
  waitForFunction<Arg>(
    fn: (arg: Arg) => unknown,
    arg: Arg,
    options: { timeout: number },
  ): Promise<unknown>;
  setViewportSize(size: { width: number; height: number }): Promise<void>;
  screenshot(options: { path: string; fullPage?: boolean }): Promise<unknown>;
}

/** The page's `document` as the functions passed to `evaluate` see it (they
 * run in the browser; this file is type-checked without the DOM library). */
declare const document: {
  querySelectorAll(selector: string): ArrayLike<{ textContent: string | null }>;
  getElementById(id: string): { textContent: string | null } | null;
};

/** Waits until the page's chat log has a line containing text. */
export function logShows(page: ChatPage, text: string): Promise<unknown> {
  return page.waitForFunction(
    (text: string) =>
      Array.from(document.querySelectorAll("#log li")).some((item) =>
        (item.textContent ?? "").includes(text)
      ),
    text,
    { timeout: 10_000 },
  );
}

export function logLines(page: ChatPage): Promise<string[]> {
  return page.evaluate(
    () =>
      Array.from(document.querySelectorAll("#log li")).map((item) =>
        item.textContent ?? ""
      ),
    undefined,
  );
}
