/**
 * What the run's output may show of text it did not write itself: a configured URL as its origin
 * only, and characters that would split or reverse a line escaped. Every output path (human
 * lines, JSON lines, the report's forms, usage errors) goes through these, so each rule is kept
 * in one place.
 */

/**
 * A configured URL as output shows it: its origin (`scheme://host:port`), never its user info,
 * path or query (a healthchecks ping URL keeps its secret in the path). Undefined for a value that
 * does not parse as a URL with an origin: such a value is not shown at all.
 */
export function shownUrl(value: string): string | undefined {
  const origin = URL.parse(value)?.origin;
  return origin === undefined || origin === "null" ? undefined : origin;
}

/** Stands in for a value that is not shown at all. */
export const NOT_SHOWN = "(value not shown)";

/**
 * `text` with each of `values` (as a command line gave them) replaced by its origin, or by
 * NOT_SHOWN when it has none: wherever it occurs when it holds `://` (a URL is not a word of the
 * message), else only where it stands quoted, as commander quotes a refused value (a short value
 * such as `h` must not eat the message's own letters). The longest first, so that a value that
 * holds another is replaced whole.
 */
export function hideValues(text: string, values: Iterable<string>): string {
  const sorted = [...new Set(values)].filter((v) => v !== "").sort((a, b) => b.length - a.length);
  let shown = text;
  for (const value of sorted) {
    const origin = shownUrl(value) ?? NOT_SHOWN;
    shown = value.includes("://")
      ? shown.replaceAll(value, origin)
      : shown.replaceAll(`'${value}'`, `'${origin}'`);
  }
  return shown;
}

/**
 * The characters that split a line for a collector or a terminal, or reorder what a reader sees:
 * C0 and C1 controls and DEL, U+2028 and U+2029 (line and paragraph separators, which JSON.stringify
 * leaves raw), and the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069).
 */
const UNSAFE = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

const escaped = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** One human line: each unsafe character as its `\uXXXX` escape, so a line stays one line. */
export function escapeLine(text: string): string {
  return text.replace(UNSAFE, escaped);
}

/**
 * JSON.stringify whose output holds no character that splits or reverses a line: those it leaves
 * raw become `\uXXXX` escapes, which every JSON parser reads back as the same string.
 */
export function safeJson(value: unknown): string {
  // JSON.stringify escapes the C0 controls itself; what it leaves raw is escaped here alike.
  return JSON.stringify(value).replace(UNSAFE, escaped);
}
