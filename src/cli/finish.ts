/**
 * How a run ends, once its command returned or could not start: the result said, printed to
 * stdout and filed with --report-file, the notifiers told, and the `run finished` line last.
 */
import type { Counts } from "../core/report.ts";
import { EXIT, EXIT_CODES, type ExitCode, pickExitCode, type SchedulerError } from "../errors.ts";
import { NOT_REGULAR_HINT, NotRegularFile, writeFileAtomic } from "../host/atomic-write.ts";
import type { Notifier, RunFacts } from "../notify/notifier.ts";
import { createOutput } from "../output/human.ts";
import type { Output, RunSummary } from "../output/logger.ts";
import type { ProcessIo } from "./io.ts";
import type { CommandResult } from "./lifecycle.ts";
import type { CliFlags, CommandName } from "./program.ts";
import type { Stops } from "./signals.ts";

/** What the run's last line tells besides its exit code, gathered as the lifecycle goes. */
export interface Ending {
  /** Epoch milliseconds at the process's start of work. */
  startedAt: number;
  command: CommandName | undefined;
  counts: Counts | null;
  /** False for --help and --version: no run, no `run finished` line. */
  run: boolean;
}

/**
 * The run's last log line, `run finished`, with its exit code, the code's name, the counts and
 * the duration: a log collector alone can alert on it. Said for every run, a refused command
 * line included; under --quiet for any exit but 0, at error.
 */
export function sayFinished(io: ProcessIo, argv: string[], ending: Ending, exitCode: number): void {
  if (!ending.run) return;
  const summary: RunSummary = {
    command: ending.command,
    exitCode,
    exitName: EXIT_CODES.find((e) => e.code === exitCode)?.name ?? "unknown",
    durationMs: Date.now() - ending.startedAt,
    counts: ending.counts,
  };
  try {
    // A refused command line said its error before any logger: a human one says the end too.
    const quiet = argv.includes("--quiet");
    const out =
      io.out ??
      createOutput({ verbose: false, quiet, stream: process.stderr, journal: io.journal });
    out.finished(summary);
  } catch {
    // stderr is best effort: the exit code still says how the run ended.
  }
}

/** A run that ended before its command: why, and the notifiers that could be built. */
export interface Unprepared {
  error: SchedulerError;
  notifiers: Notifier[];
}

/**
 * A run that ended before its command started (exit 3 or 7): said, printed with --json, filed
 * with --report-file, and told to the notifiers that can be built from what could be read.
 */
export async function endEarly(
  { error, notifiers }: Unprepared,
  flags: CliFlags,
  io: ProcessIo,
  facts: RunFacts,
  stops: Stops,
  ending: Ending,
): Promise<ExitCode> {
  const said = io.out as Output;
  // A config error (exit 3) is an error; another run holding the lock (exit 7) is a warning.
  for (const line of error.message.split("\n")) said.ended(error.code, line);
  const early = await io.earlyJson(error.exitCode, error.code, error.message, flags);
  if (flags.json === true) await io.write(early);
  // An unwritable report file would be 74, which 3 and 7 outrank: its error line is enough.
  await fileReport(flags.reportFile, () => [early], said);
  return notify(notifiers, facts, error.exitCode, earlyResult(error), stops, ending);
}

/** The result said and printed (stdout, --report-file): the run's exit code, 74 if unwritten. */
export async function printResult(
  result: CommandResult,
  flags: CliFlags,
  out: Output,
  io: ProcessIo,
): Promise<ExitCode> {
  out.finish();
  // Whatever ended the run and was not said when it happened is said now.
  if (result.error && !out.announced.has(result.error.code))
    out.ended(result.error.code, result.error.message);
  const written = await io.write(flags.json === true ? result.json() : result.human());
  if (!written) {
    const message =
      "The report could not be written to stdout (closed or full); the sweep itself ran.";
    out.error(message, { code: "io" });
  }
  const filed = await fileReport(flags.reportFile, result.json, out);
  return pickExitCode([result.exitCode, ...(written && filed ? [] : [EXIT.io])]);
}

/** Tells every notifier how the run ended; they never change the exit code. */
export async function notify(
  notifiers: Notifier[],
  facts: RunFacts,
  exitCode: ExitCode,
  result: CommandResult,
  stops: Stops,
  ending: Ending,
): Promise<ExitCode> {
  stops.reported = exitCode;
  ending.counts = result.report?.counts ?? null;
  const end = {
    ...facts,
    finishedAt: new Date(),
    exitCode,
    error: result.error,
    report: result.report,
  };
  await Promise.all(notifiers.map((n) => n.finish(end).catch(() => {})));
  return exitCode;
}

/**
 * `--report-file`: the JSON report written there too, atomically (a log driver splits a long
 * stdout line at 16 KiB). False, with one error line, when it could not be written (exit 74).
 */
async function fileReport(
  path: string | undefined,
  json: () => Iterable<string>,
  out: Output,
): Promise<boolean> {
  if (path === undefined) return true;
  try {
    await writeFileAtomic(path, json());
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
    out.error(
      error instanceof NotRegularFile
        ? `The report was not written to --report-file ${path}: ${NOT_REGULAR_HINT}.`
        : `The report could not be written to --report-file ${path} (${code}): check that its directory exists and is writable.`,
    );
    return false;
  }
}

/** A run that ended before its command started (exit 3 or 7), for the notifiers. */
export function earlyResult(error: SchedulerError): CommandResult {
  const message = { code: error.code, message: error.message };
  return { exitCode: error.exitCode, error: message, json: () => [], human: () => "" };
}
