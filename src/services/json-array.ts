/**
 * A JSON array read one element at a time: JSON.parse of a whole patient list holds every record
 * (names included) at once, several times the text's size; here each element is parsed on its own,
 * handed over and dropped, so at most one raw record lives beside the text.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/** Where a text stands as a JSON array: read whole, not an array at all, or not JSON. */
export type ArrayScan = "read" | "not_array" | "malformed";

/**
 * Calls `each` with every element of the JSON array `text`, in order, and says "read". Answers
 * "not_array" (having called nothing) when the text does not start with `[`, and "malformed" as
 * soon as it finds that the text is not JSON (after the elements before the fault): each element
 * is checked by JSON.parse itself, and only the separators between them by this scan, so it
 * accepts exactly what JSON.parse accepts. A throw from `each` propagates.
 */
export function eachArrayElement(text: string, each: (element: unknown) => void): ArrayScan {
  let at = skipSpace(text, 0);
  if (text.charCodeAt(at) !== OPEN_ARRAY) return "not_array";
  at = skipSpace(text, at + 1);
  if (text.charCodeAt(at) === CLOSE_ARRAY) return end(text, at);
  for (;;) {
    const start = at;
    at = elementEnd(text, at);
    if (at < 0) return "malformed";
    let element: unknown;
    try {
      element = JSON.parse(text.slice(start, at));
    } catch {
      return "malformed";
    }
    each(element);
    if (text.charCodeAt(at) === CLOSE_ARRAY) return end(text, at);
    if (text.charCodeAt(at) !== COMMA) return "malformed";
    at++;
  }
}

/**
 * The index of the `,` or `]` that ends the element starting at `from` (nesting and strings
 * skipped), else -1. What lies between is JSON.parse's to judge.
 */
function elementEnd(text: string, from: number): number {
  let depth = 0;
  for (let at = from; at < text.length; at++) {
    const c = text.charCodeAt(at);
    if (c === QUOTE) {
      at = closingQuote(text, at);
      if (at < 0) return -1;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      depth++;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      if (depth === 0) return at;
      depth--;
    } else if (c === COMMA && depth === 0) {
      return at;
    }
  }
  return -1;
}

/** The index of the quote that closes the string opening at `open`, else -1. */
function closingQuote(text: string, open: number): number {
  let at = text.indexOf('"', open + 1);
  while (at >= 0) {
    let slashes = 0;
    while (text.charCodeAt(at - 1 - slashes) === BACKSLASH) slashes++;
    // An odd run of backslashes escapes this quote.
    if (slashes % 2 === 0) return at;
    at = text.indexOf('"', at + 1);
  }
  return -1;
}

/** "read" when only JSON whitespace follows the closing bracket at `at`. */
function end(text: string, at: number): ArrayScan {
  return skipSpace(text, at + 1) === text.length ? "read" : "malformed";
}

/** The index of the first character at or after `from` that is not JSON whitespace. */
function skipSpace(text: string, from: number): number {
  let at = from;
  for (; at < text.length; at++) {
    const c = text.charCodeAt(at);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
  }
  return at;
}
