/**
 * What a logger is: the Output both stderr forms implement (human.ts as lines through consola,
 * json-log.ts as JSON objects), with its levels, a line's fields and how a run ended.
 */
import type { SweepEvent } from "../core/events.ts";
import type { Counts } from "../core/report.ts";

export type Level = "error" | "warn" | "info" | "debug";

/**
 * What a log line says besides its words, for machines: the event's fields in snake_case
 * (patient_id, outcome, stage, reason, from, to, service, route, status, attempts, duration_ms,
 * code), the run's end (exit_code, exit_name, counts), and a bug's stack. Never a name, a vital,
 * a query, a password or a token.
 */
export type LogFields = Record<
  string,
  string | number | boolean | null | Readonly<Record<string, number>>
>;

/** How a run ended, for its last log line. */
export interface RunSummary {
  /** Undefined when the command line was refused (exit 2). */
  command: string | undefined;
  exitCode: number;
  /** The exit code's name (src/errors.ts): `ok`, `patients_failed`, `locked`... */
  exitName: string;
  durationMs: number;
  /** The sweep's counts; null when no sweep ran (a `check`, a run that ended before its sweep). */
  counts: Counts | null;
}

export interface Output {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  /** With a `stack` field (a bug under --verbose), the human form prints it below the line. */
  error(message: string, fields?: LogFields): void;
  /** A sweep's event, in words (or a redrawn progress line). */
  event(event: SweepEvent): void;
  /** Error codes of the stops already said, so the end of the run does not repeat them. */
  readonly announced: ReadonlySet<string>;
  /** Says what ended a run, at error for a failed service, login or setting, else at warn. */
  ended(code: string, message: string): void;
  /** Clears the progress line for good. */
  finish(): void;
  /** The run's last line (`run finished`), at the level `finishedLevel` gives. */
  finished(summary: RunSummary): void;
}
