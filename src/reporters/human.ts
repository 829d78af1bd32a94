/**
 * What the CLI says on stderr: log lines through consola and, on a terminal, a live progress line.
 * stdout is left to the report alone.
 */
import { createConsola, LogLevels } from "consola/basic";
import type { SweepEvent } from "../core/events.ts";
import type { PatientResult } from "../core/report.ts";

export interface OutputOptions {
  verbose: boolean;
  quiet: boolean;
  stream: NodeJS.WriteStream;
}

export interface Output {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** A sweep's event, in words (or a redrawn progress line). */
  event(event: SweepEvent): void;
  /** Error codes of the stops already said, so the end of the run does not repeat them. */
  readonly announced: ReadonlySet<string>;
  /** Says what ended a run, at error for a failed service or login, else at warn. */
  ended(code: string, message: string): void;
  /** Clears the progress line for good. */
  finish(): void;
}

/** At most this often the progress line is redrawn. */
const REDRAW_MS = 100;

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
  const say = (fn: (message: string) => void) => (message: string) => {
    clear();
    fn(message);
  };

  const warn = say((m) => logger.warn(m));
  const error = say((m) => logger.error(m));
  const debug = say((m) => logger.debug(m));
  const info = say((m) => logger.info(m));
  const announced = new Set<string>();
  const ended = (code: string, message: string) => {
    announced.add(code);
    (code === "auth" || code === "upstream" ? error : warn)(message);
  };

  const patientDone = (result: PatientResult) => {
    done++;
    const where = result.pid === null ? "a record without a pid" : `pid ${result.pid}`;
    if (result.outcome === "failed") {
      failed++;
      warn(`${where} failed at ${result.stage}: ${result.reason}`);
    } else if (verbose) {
      const change = result.to !== null ? ` (${result.from} -> ${result.to})` : "";
      debug(`${where}: ${result.outcome}${change}`);
    }
    if (live && (done === total || Date.now() - drawnAt >= REDRAW_MS)) draw();
  };

  return {
    info,
    warn,
    error,
    announced,
    ended,
    event(event) {
      switch (event.type) {
        case "run_started":
          total = event.patients;
          started = Date.now();
          logger.info(`Sweeping ${event.patients} patients`);
          return;
        case "patient_done":
          return patientDone(event.result);
        case "stopped":
          return ended(event.code, event.message);
        case "ml_probe_used":
          return info(
            "ML server: GET /health did not answer true (a proxy in front?); POST /predict answered, so it is up.",
          );
        case "request_done":
          return;
      }
    },
    finish: clear,
  };
}
