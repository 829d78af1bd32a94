/**
 * A JSON array read one element at a time, from text that may arrive in pieces: JSON.parse of a
 * whole patient list holds every record (names included) at once, several times the text's size;
 * here each element is parsed on its own, handed over and dropped, so at most one raw record and
 * the unread rest of one piece live at a time. One element is bounded too, before JSON.parse sees
 * it: one record holding a 30-million-element array, a 60 MiB string or a million levels of
 * nesting would otherwise fill a 128 MiB heap on its own (see LIMITS.recordChars).
 */
import { LIMITS } from "../defaults.ts";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/** Where a text stands as a JSON array: read whole, not an array at all, or not JSON. */
export type ArrayScan = "read" | "not_array" | "malformed";

/** An element the reader did not parse because it broke a bound; its text is not kept. */
export interface Unread {
  /** Over `maxChars` characters, or nested deeper than `maxDepth` levels. */
  why: "size" | "depth";
  /** Its first characters (at most HEAD_CHARS, leading spaces included): enough for a leading key. */
  head: string;
}

/** What one element may hold before it is parsed. */
export interface ElementBounds {
  /** Characters of its text, spaces before it included. */
  maxChars: number;
  /** Arrays and objects open at once inside it, itself included. */
  maxDepth: number;
}

/** The bounds of a patient record (LIMITS.recordChars, LIMITS.recordDepth). */
export const RECORD_BOUNDS: ElementBounds = {
  maxChars: LIMITS.recordChars,
  maxDepth: LIMITS.recordDepth,
};

/** How much of an unread element's text `Unread.head` keeps. */
const HEAD_CHARS = 64;

/** Reads a JSON array piece by piece (see `createArrayReader`). */
export interface ArrayReader {
  /**
   * Reads the next piece of the text. Answers "not_array" or "malformed" as soon as the text so
   * far decides it (the reader then reads nothing more), else undefined.
   */
  write(piece: string): ArrayScan | undefined;
  /** The text has ended: what it was. */
  end(): ArrayScan;
}

/**
 * A reader that calls `each` with every element of a JSON array, in order, whatever pieces its
 * text is cut into (an element may span many). It says "not_array" (having called nothing) when
 * the text does not start with `[`, and "malformed" as soon as it finds that the text is not JSON
 * (after the elements before the fault): each element is checked by JSON.parse itself, and only
 * the separators between them by this scan, so it accepts exactly what JSON.parse accepts, for
 * elements within `bounds`. An element past them is not kept nor parsed: its end is found by the
 * same scan and `unread` is called in its place (whether its text was valid JSON is not judged).
 * A throw from `each` or `unread` propagates.
 */
export function createArrayReader(
  each: (element: unknown) => void,
  unread: (element: Unread) => void,
  bounds: ElementBounds = RECORD_BOUNDS,
): ArrayReader {
  /** Before `[`, before the first element, inside an element, after `]`, or decided. */
  let phase: "open" | "first" | "element" | "closed" | ArrayScan = "open";
  /** The piece being read, and where its scan resumes. */
  let text = "";
  let at = 0;
  /** The current element: its start in `text`, and its text in earlier pieces. */
  let start = 0;
  let parts: string[] = [];
  /** Characters of the current element in `parts`. */
  let kept = 0;
  /** The bound the current element broke: from then on its text is dropped, not kept. */
  let broke: Unread | undefined;
  let depth = 0;
  let inString = false;
  /** Backslashes ending the string's text in earlier pieces: they may escape a quote here. */
  let carried = 0;

  /** Scans the current element from `at`: the index of the `,` or `]` that ends it, else -1. */
  const elementEnd = (): number => {
    for (; at < text.length; at++) {
      if (inString) {
        const close = closingQuote(text, at, carried);
        if (close < 0) {
          carried = trailingSlashes(text, at, carried);
          at = text.length;
          return -1;
        }
        at = close;
        inString = false;
        continue;
      }
      const c = text.charCodeAt(at);
      if (c === QUOTE) {
        inString = true;
        carried = 0;
      } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
        depth++;
        if (depth > bounds.maxDepth && broke === undefined) drop("depth", at + 1);
      } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
        if (depth === 0) return at;
        depth--;
      } else if (c === COMMA && depth === 0) {
        return at;
      }
    }
    return -1;
  };

  /**
   * The current element broke a bound, its text in this piece read up to `upTo`: keep its head,
   * drop the rest of what is kept of it.
   */
  const drop = (why: Unread["why"], upTo: number) => {
    let head = "";
    for (const part of [...parts, text.slice(start, Math.min(upTo, start + HEAD_CHARS))]) {
      if (head.length >= HEAD_CHARS) break;
      head += part.slice(0, HEAD_CHARS - head.length);
    }
    broke = { why, head };
    parts = [];
    kept = 0;
  };

  /** The verdict, final: the reader reads nothing more. */
  const decide = (scan: ArrayScan): ArrayScan => {
    phase = scan;
    text = "";
    parts = [];
    return scan;
  };

  const startElement = (from: number) => {
    phase = "element";
    start = from;
    at = from;
    parts = [];
    kept = 0;
    broke = undefined;
    depth = 0;
    inString = false;
  };

  const read = (): ArrayScan | undefined => {
    for (;;) {
      if (phase === "element") {
        const end = elementEnd();
        const size = kept + (end < 0 ? text.length : end) - start;
        if (broke === undefined && size > bounds.maxChars)
          drop("size", end < 0 ? text.length : end);
        if (end < 0) {
          // Kept whole only once it is complete: each piece is scanned once.
          if (broke === undefined) {
            parts.push(text.slice(start));
            kept = size;
          }
          start = 0;
          return undefined;
        }
        if (broke === undefined) {
          parts.push(text.slice(start, end));
          let element: unknown;
          try {
            element = JSON.parse(parts.length === 1 ? (parts[0] as string) : parts.join(""));
          } catch {
            return decide("malformed");
          }
          parts = [];
          each(element);
        } else {
          const skipped = broke;
          broke = undefined;
          unread(skipped);
        }
        const c = text.charCodeAt(end);
        if (c === CLOSE_ARRAY) {
          phase = "closed";
          at = end + 1;
        } else if (c === COMMA) {
          startElement(end + 1);
        } else {
          return decide("malformed");
        }
        continue;
      }
      if (phase !== "open" && phase !== "first" && phase !== "closed") return phase;
      at = skipSpace(text, at);
      if (at === text.length) return undefined;
      const c = text.charCodeAt(at);
      if (phase === "closed") return decide("malformed");
      if (phase === "open") {
        if (c !== OPEN_ARRAY) return decide("not_array");
        phase = "first";
        at++;
      } else if (c === CLOSE_ARRAY) {
        phase = "closed";
        at++;
      } else {
        startElement(at);
      }
    }
  };

  return {
    write(piece) {
      if (phase !== "open" && phase !== "first" && phase !== "element" && phase !== "closed") {
        return phase;
      }
      text = piece;
      at = 0;
      return read();
    },
    end() {
      if (phase === "open") return decide("not_array");
      if (phase === "closed") return decide("read");
      if (phase === "first" || phase === "element") return decide("malformed");
      return phase;
    },
  };
}

/**
 * Calls `each` with every element of the JSON array `text`, in order (see `createArrayReader`).
 */
export function eachArrayElement(
  text: string,
  each: (element: unknown) => void,
  unread: (element: Unread) => void,
  bounds?: ElementBounds,
): ArrayScan {
  const reader = createArrayReader(each, unread, bounds);
  return reader.write(text) ?? reader.end();
}

/**
 * The index of the quote that closes a string whose text resumes at `from`, else -1. `carried`
 * backslashes end the string's text before `from` (in an earlier piece).
 */
function closingQuote(text: string, from: number, carried: number): number {
  let at = text.indexOf('"', from);
  while (at >= 0) {
    let slashes = 0;
    while (at - 1 - slashes >= from && text.charCodeAt(at - 1 - slashes) === BACKSLASH) slashes++;
    if (at - slashes === from) slashes += carried;
    // An odd run of backslashes escapes this quote.
    if (slashes % 2 === 0) return at;
    at = text.indexOf('"', at + 1);
  }
  return -1;
}

/** The backslashes ending `text` after `from`, plus `carried` if they are all it holds. */
function trailingSlashes(text: string, from: number, carried: number): number {
  let slashes = 0;
  while (
    text.length - 1 - slashes >= from &&
    text.charCodeAt(text.length - 1 - slashes) === BACKSLASH
  )
    slashes++;
  return text.length - slashes === from ? slashes + carried : slashes;
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
