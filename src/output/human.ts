/**
 * What the CLI says on stderr: log lines through consola and, on a terminal, a live progress line.
 * stdout is left to the report alone. The words for each event live here too: json-log.ts says
 * the same things as JSON objects.
 */
import { Writable } from "node:stream";
import { createConsola, LogLevels } from "consola/basic";
import type { SweepEvent } from "../core/events.ts";
import type { ConcurrencyCause } from "../core/pacing.ts";
import { type Counts, OUTCOMES, type PatientResult } from "../core/report.ts";
import type { Service } from "../services/http.ts";
import { escapeLine } from "./safe-text.ts";

export interface OutputOptions {
  verbose: boolean;
  quiet: boolean;
  stream: NodeJS.WriteStream;
  /** stderr is the systemd journal: each line starts with its syslog priority (`<4>`...). */
  journal?: boolean | undefined;
}

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

/** The status table's ids (contract.md); any other id is shown as `status <id>`. */
const STATUS_NAMES: Readonly<Record<number, string>> = {
  1: "Alert",
  9: "Normal",
  10: "Unobserved",
};

function statusName(id: number | null): string {
  return id === null ? "no status" : (STATUS_NAMES[id] ?? `status ${id}`);
}

/** Why a patient was skipped, in words, by its reason code. */
const SKIP_REASONS: Readonly<Record<string, string>> = {
  insufficient_vitals: "fewer than five vitals, nothing to predict from",
  stale_vitals: "the newest vital record is older than --max-vitals-age",
};

/**
 * The level an ending is said at: a run that could not do its work because of a service, the
 * login, its settings or a bug is an error; one that stopped as asked (a signal, the deadline, a
 * threshold) or found another run holding the lock is a warning.
 */
export function endedLevel(code: string): Level {
  return ["auth", "upstream", "config", "usage", "internal", "io"].includes(code)
    ? "error"
    : "warn";
}

/**
 * The level of the `run finished` line: info on exit 0; warn when the run stopped short as asked
 * or by design (1 patients failed, 7 locked, 8 deadline); error otherwise. Under --quiet (errors
 * only) every non-zero exit is an error, so that cron mails it.
 */
export function finishedLevel(exitCode: number, quiet: boolean): Level {
  if (exitCode === 0) return "info";
  if (quiet) return "error";
  return [1, 7, 8].includes(exitCode) ? "warn" : "error";
}

/** `run finished: exit 1 (patients_failed) in 2.3s; 8 patients: 7 updated, 1 failed`. */
export function finishedMessage({ exitCode, exitName, durationMs, counts }: RunSummary): string {
  const head = `run finished: exit ${exitCode} (${exitName}) in ${(durationMs / 1000).toFixed(1)}s`;
  if (counts === null) return head;
  const shown = OUTCOMES.filter((o) => counts[o] > 0 || o === "failed");
  const parts = shown.map((o) => `${counts[o]} ${o.replace("_", " ")}`);
  return `${head}; ${counts.selected} patients: ${parts.join(", ")}`;
}

/** The syslog priority journald reads at a line's start (sd-daemon(3)), by level. */
export const JOURNAL_PRIORITY: Readonly<Record<Level, string>> = {
  error: "<3>",
  warn: "<4>",
  info: "<6>",
  debug: "<7>",
};

const SERVICE_NAMES: Readonly<Record<Service, string>> = { backend: "backend", ml: "ML server" };

const CAUSES: Readonly<Record<ConcurrencyCause, string>> = {
  headroom: "latency near its floor",
  latency: "latency climbing",
  overload: "a 429, 503, 504 or timeout",
};

/** One log line: its level, its words and its fields. */
export interface LogLine {
  level: Level;
  msg: string;
  fields: LogFields;
}

/**
 * An event as one log line, or undefined for one not worth a line. Request lines are debug and
 * carry the route without its query (a pid may sit there); patients appear by pid only.
 */
export function eventLine(event: SweepEvent): LogLine | undefined {
  switch (event.type) {
    case "run_started":
      return {
        level: "info",
        msg: `Sweeping ${event.patients} patients`,
        fields: { patients: event.patients },
      };
    case "patient_done":
      return patientLine(event.result, event.durationMs, event.reused === true);
    case "request_done": {
      const { service, route, status, attempts, durationMs, reason } = event;
      const tries = attempts === 1 ? "1 attempt" : `${attempts} attempts`;
      return {
        level: "debug",
        msg: `${SERVICE_NAMES[service]} ${route}: ${status ?? reason} (${tries}, ${durationMs} ms)`,
        fields: { service, route, status, attempts, duration_ms: durationMs, reason },
      };
    }
    case "stopped":
      return { level: endedLevel(event.code), msg: event.message, fields: { code: event.code } };
    case "concurrency_changed":
      return {
        level: "debug",
        msg: `Concurrency ${event.concurrency} (${CAUSES[event.cause]})`,
        fields: { concurrency: event.concurrency, cause: event.cause },
      };
    case "ml_probe_used":
      return {
        level: "info",
        msg: "ML server: GET /health did not answer true (a proxy in front?); POST /predict answered, so it is up.",
        fields: {},
      };
  }
}

function patientLine(result: PatientResult, durationMs: number, reused: boolean): LogLine {
  const { pid, outcome, stage, reason, from, to } = result;
  // `patient_id`, not `pid`: every log schema (ECS, pino, journald) means the process by `pid`.
  const fields: LogFields = {
    patient_id: pid,
    outcome,
    stage,
    reason,
    from,
    to,
    duration_ms: durationMs,
  };
  if (reused) fields.reused = true;
  const where = pid === null ? "a record without a pid" : `pid ${pid}`;
  if (outcome === "failed") {
    return { level: "warn", msg: `${where} failed at ${stage}: ${reason}`, fields };
  }
  let why = "";
  if (outcome === "skipped") why = `: ${SKIP_REASONS[reason ?? ""] ?? reason}`;
  else if (outcome === "unchanged") why = ` (${statusName(from)})`;
  else if (to !== null) why = ` (${statusName(from)} -> ${statusName(to)})`;
  else if (reason !== null) why = ` at ${stage}: ${reason}`;
  if (reused) why += ", from a remembered prediction";
  return { level: "debug", msg: `${where}: ${outcome.replace("_", " ")}${why}`, fields };
}

/**
 * At most this often the progress line is redrawn as patients finish; one that finished since is
 * drawn this long after the last redraw at the latest, so the count never lags a stall.
 */
const REDRAW_MS = 100;

/** The ranks of our levels, as consola numbers them (LogLevels). */
const CONSOLA_LEVELS: Readonly<Record<Level, number>> = {
  error: LogLevels.error,
  warn: LogLevels.warn,
  info: LogLevels.info,
  debug: LogLevels.debug,
};

/** Our level of one of consola's numeric levels (fatal is error, log and success are info). */
function levelOf(consolaLevel: number): Level {
  if (consolaLevel <= LogLevels.error) return "error";
  if (consolaLevel <= LogLevels.warn) return "warn";
  return consolaLevel <= LogLevels.info ? "info" : "debug";
}

/** The human implementation of Output: consola's basic lines and the progress line. */
export function createOutput({ verbose, quiet, stream, journal = false }: OutputOptions): Output {
  // On the journal, every line consola writes starts with the priority of the log it is part of.
  let priority = "";
  const target = journal ? prefixLines(stream, () => priority) : stream;
  const most = quiet ? LogLevels.error : verbose ? LogLevels.debug : LogLevels.info;
  const logger = createConsola({
    // One line per message (the basic reporter), all on stderr: the report owns stdout.
    fancy: false,
    stdout: target,
    stderr: target,
    level: most,
    formatOptions: { date: false, colors: stream.isTTY === true },
  });
  if (journal) {
    // Each log object carries its level, repeated-line summaries included.
    logger.setReporters(
      logger.options.reporters.map((reporter) => ({
        log(logObj, ctx) {
          priority = JOURNAL_PRIORITY[levelOf(logObj.level)];
          reporter.log(logObj, ctx);
        },
      })),
    );
  }
  const live = stream.isTTY === true && !quiet;
  let total = 0;
  let done = 0;
  let failed = 0;
  let started = 0;
  let drawnAt = 0;
  let shown = false;
  let finished = false;
  let pending: NodeJS.Timeout | undefined;

  const clear = () => {
    if (shown) stream.write("\r\x1b[K");
    shown = false;
  };
  const draw = () => {
    clearTimeout(pending);
    pending = undefined;
    if (!live || finished || total === 0) return;
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? (done / seconds).toFixed(1) : "0.0";
    stream.write(`\r\x1b[K${done}/${total} patients, ${rate}/s, ${failed} failed`);
    shown = true;
    drawnAt = Date.now();
  };
  /** The progress line brought up to date now, or at most REDRAW_MS after its last redraw. */
  const redraw = () => {
    if (!live) return;
    const wait = drawnAt + REDRAW_MS - Date.now();
    if (done === total || wait <= 0) return draw();
    if (pending) return;
    // Not keeping the process alive: the run's end clears the line anyway.
    pending = setTimeout(draw, wait).unref();
  };
  /**
   * One message, escaped so that it stays one line (a stack, ours, follows on its own lines). The
   * progress line is cleared only for a line that is printed, and drawn again below it.
   */
  const say = (level: Level, message: string, below?: string): boolean => {
    if (CONSOLA_LEVELS[level] > most) return false;
    const wasShown = shown;
    clear();
    const line = escapeLine(message);
    logger[level](below === undefined ? line : `${line}\n${below}`);
    if (wasShown) draw();
    return wasShown;
  };
  const announced = new Set<string>();
  const ended = (code: string, message: string) => {
    announced.add(code);
    say(endedLevel(code), message);
  };
  const finish = (): void => {
    clearTimeout(pending);
    pending = undefined;
    finished = true;
    clear();
  };

  return {
    info: (message) => say("info", message),
    warn: (message) => say("warn", message),
    error: (message, fields) => {
      const stack = fields?.stack;
      say("error", message, typeof stack === "string" ? stack : undefined);
    },
    announced,
    ended,
    event(event) {
      if (event.type === "stopped") return ended(event.code, event.message);
      // Requests are for machines (--log-format json); a person reads patients.
      if (event.type === "request_done") return;
      if (event.type === "run_started") {
        total = event.patients;
        started = Date.now();
      }
      // A patient counts before its line is said: the line drawn again below it is current.
      if (event.type === "patient_done") {
        done++;
        if (event.result.outcome === "failed") failed++;
      }
      const line = eventLine(event);
      const drawn = line !== undefined && say(line.level, line.msg);
      if (event.type === "patient_done" && !drawn) redraw();
    },
    finish,
    finished(summary) {
      finish();
      say(finishedLevel(summary.exitCode, quiet), finishedMessage(summary));
    },
  };
}

/**
 * A stream for consola that writes each line of what it is given to `stream` with `prefix()`
 * before it (journald reads a `<N>` there as the line's priority and strips it).
 */
function prefixLines(stream: NodeJS.WritableStream, prefix: () => string): NodeJS.WriteStream {
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
