/**
 * `--log-format json`: stderr as one JSON object per line, for log collectors. The same lines as
 * the human output (the words come from event-lines.ts), with `time`, `level`, `msg`, `run_id`
 * and the event's fields; requests too under --verbose; never a progress line. The last line's
 * `msg` is `run finished` alone, its numbers in fields; on the journal each line starts with `<N>`.
 */
import type { SweepEvent } from "../core/events.ts";
import { endedLevel, eventLine, finishedLevel } from "./event-lines.ts";
import { JOURNAL_PRIORITY } from "./journal.ts";
import type { Level, LogFields, Output } from "./logger.ts";
import { safeJson } from "./safe-text.ts";

export interface JsonLogOptions {
  verbose: boolean;
  quiet: boolean;
  stream: NodeJS.WritableStream;
  /** The run's id, in every line. */
  runId: string;
  /** The run's shard, in every line when set: the shards of one sweep log side by side. */
  shard?: { index: number; count: number } | undefined;
  /** stderr is the systemd journal: each line starts with its syslog priority (`<4>`...). */
  journal?: boolean | undefined;
}

/** How far each level is from the quietest setting, which says errors only. */
const RANK: Readonly<Record<Level, number>> = { error: 0, warn: 1, info: 2, debug: 3 };

/**
 * The JSON implementation of Output. Written by hand rather than as a consola reporter: consola
 * merges identical consecutive lines ("repeated 5 times"), and two requests can be identical.
 */
export function createJsonLog(options: JsonLogOptions): Output {
  const { verbose, quiet, stream, runId, shard, journal = false } = options;
  const sharded = shard ? { shard: { index: shard.index, count: shard.count } } : {};
  const most = quiet ? RANK.error : verbose ? RANK.debug : RANK.info;
  const log = (level: Level, msg: string, fields: LogFields = {}) => {
    if (RANK[level] > most) return;
    const line = {
      time: new Date().toISOString(),
      level,
      msg,
      run_id: runId,
      ...sharded,
      ...fields,
    };
    try {
      stream.write(`${journal ? JOURNAL_PRIORITY[level] : ""}${safeJson(line)}\n`);
    } catch {
      // stderr is best effort: a reader gone never stops the run.
    }
  };
  const announced = new Set<string>();
  const ended = (code: string, message: string) => {
    announced.add(code);
    log(endedLevel(code), message, { code });
  };
  return {
    info: (message, fields) => log("info", message, fields),
    warn: (message, fields) => log("warn", message, fields),
    error: (message, fields) => log("error", message, fields),
    announced,
    ended,
    event(event: SweepEvent) {
      if (event.type === "stopped") return ended(event.code, event.message);
      const line = eventLine(event);
      if (line) log(line.level, line.msg, line.fields);
    },
    finish: () => {},
    // A fixed `msg` for a collector to match; the numbers are fields.
    finished: ({ command, exitCode, exitName, durationMs, counts }) =>
      log(finishedLevel(exitCode, quiet), "run finished", {
        command: command ?? null,
        exit_code: exitCode,
        exit_name: exitName,
        duration_ms: durationMs,
        counts,
      }),
  };
}
