/**
 * stderr as the systemd journal reads it: each line starts with its syslog priority, which
 * journald strips and keeps as the line's level.
 */
import { Writable } from "node:stream";
import type { Level } from "./logger.ts";

/** The syslog priority journald reads at a line's start (sd-daemon(3)), by level. */
export const JOURNAL_PRIORITY: Readonly<Record<Level, string>> = {
  error: "<3>",
  warn: "<4>",
  info: "<6>",
  debug: "<7>",
};

/**
 * A stream for consola that writes each line of what it is given to `stream` with `prefix()`
 * before it (journald reads a `<N>` there as the line's priority and strips it).
 */
export function prefixLines(
  stream: NodeJS.WritableStream,
  prefix: () => string,
): NodeJS.WriteStream {
  const writer = new Writable({
    decodeStrings: false,
    write(chunk: string, _encoding, done) {
      stream.write(chunk.replace(/^(?=.)/gm, prefix()));
      done();
    },
  });
  // consola only writes to it; what a terminal adds to a stream (columns, isTTY) it reads as absent.
  return writer as NodeJS.WriteStream;
}
