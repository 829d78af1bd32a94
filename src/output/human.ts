/**
 * What the CLI says on stderr: log lines through consola and, on a terminal, a live progress line.
 * stdout is left to the report alone. The words for each event live here too: json-log.ts says
 * the same things as JSON objects.
 */
import { createConsola, LogLevels } from "consola/basic";
import type { SweepEvent } from "../core/events.ts";
import type { ConcurrencyCause } from "../core/pacing.ts";
import type { PatientResult } from "../core/report.ts";
import type { Service } from "../services/http.ts";
import { escapeLine } from "./safe-text.ts";

export interface OutputOptions {
  verbose: boolean;
  quiet: boolean;
  stream: NodeJS.WriteStream;
}

export type Level = "error" | "warn" | "info" | "debug";

/**
 * What a log line says besides its words, for machines: the event's fields in snake_case (pid,
 * outcome, stage, reason, from, to, service, route, status, attempts, duration_ms, code), and a
 * bug's stack. Never a name, a vital, a query, a password or a token.
 */
export type LogFields = Record<string, string | number | boolean | null>;

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
  const fields: LogFields = { pid, outcome, stage, reason, from, to, duration_ms: durationMs };
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

/** At most this often the progress line is redrawn. */
const REDRAW_MS = 100;

/** The human implementation of Output: consola's basic lines and the progress line. */
export function createOutput({ verbose, quiet, stream }: OutputOptions): Output {
  const logger = createConsola({
    // One line per message (the basic reporter), all on stderr: the report owns stdout.
    fancy: false,
    stdout: stream,
    stderr: stream,
    level: quiet ? LogLevels.error : verbose ? LogLevels.debug : LogLevels.info,
    formatOptions: { date: false, colors: stream.isTTY === true },
  });
  const live = stream.isTTY === true && !quiet;
  let total = 0;
  let done = 0;
  let failed = 0;
  let started = 0;
  let drawnAt = 0;
  let shown = false;

  const clear = () => {
    if (shown) stream.write("\r\x1b[K");
    shown = false;
  };
  const draw = () => {
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? (done / seconds).toFixed(1) : "0.0";
    stream.write(`\r\x1b[K${done}/${total} patients, ${rate}/s, ${failed} failed`);
    shown = true;
    drawnAt = Date.now();
  };
  /** One message, escaped so that it stays one line (a stack, ours, follows on its own lines). */
  const say = (level: Level, message: string, below?: string) => {
    clear();
    const line = escapeLine(message);
    logger[level](below === undefined ? line : `${line}\n${below}`);
  };
  const announced = new Set<string>();
  const ended = (code: string, message: string) => {
    announced.add(code);
    say(endedLevel(code), message);
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
      const line = eventLine(event);
      if (line) say(line.level, line.msg);
      if (event.type === "patient_done") {
        done++;
        if (event.result.outcome === "failed") failed++;
        if (live && (done === total || Date.now() - drawnAt >= REDRAW_MS)) draw();
      }
    },
    finish: clear,
  };
}
