/**
 * What the CLI says on stderr: log lines through consola and, on a terminal, a live progress line.
 * stdout is left to the report alone. The words for each event live in event-lines.ts:
 * json-log.ts says the same things as JSON objects.
 */
import { createConsola, LogLevels } from "consola/basic";
import { endedLevel, eventLine, finishedLevel, finishedMessage } from "./event-lines.ts";
import { JOURNAL_PRIORITY, prefixLines } from "./journal.ts";
import type { Level, Output } from "./logger.ts";
import { escapeLine } from "./safe-text.ts";

export interface OutputOptions {
  verbose: boolean;
  quiet: boolean;
  stream: NodeJS.WriteStream;
  /** stderr is the systemd journal: each line starts with its syslog priority (`<4>`...). */
  journal?: boolean | undefined;
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
