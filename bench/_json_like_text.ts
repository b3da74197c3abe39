/**
 * Deterministic JSON-like text for the permessage-deflate benchmarks: an
 * array of small records (ids, user names, scores, flags, tags, timestamps),
 * the kind of chat and telemetry traffic compression is negotiated for.
 *
 * @module
 */

/** Deterministic JSON-like text of about `bytes` bytes. */
export function jsonLikeText(bytes: number, seed = 1): string {
  let state = seed >>> 0;
  const random = () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const words = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
  ];
  const items: string[] = [];
  let size = 2;
  for (let id = 0; size < bytes; id++) {
    const item = JSON.stringify({
      id,
      user: words[Math.floor(random() * words.length)] + "_" +
        Math.floor(random() * 10000),
      score: Math.round(random() * 1e6) / 100,
      active: random() < 0.5,
      tags: [
        words[Math.floor(random() * 16)],
        words[Math.floor(random() * 16)],
      ],
      ts: 1700000000000 + Math.floor(random() * 1e9),
    });
    items.push(item);
    size += item.length + 1;
  }
  return ("[" + items.join(",") + "]").slice(0, bytes);
}
