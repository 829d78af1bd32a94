/**
 * stdout and stderr as a run uses them: a report that cannot be written is remembered (exit 74),
 * stderr is best effort, a bug is one line (exit 70), and the process ends only after both drain.
 */
import { randomUUID } from "node:crypto";
import { fstatSync } from "node:fs";
import { mostInFlight } from "../config/rules.ts";
import { buildReport } from "../core/report.ts";
import { DEFAULTS } from "../defaults.ts";
import { EXIT, type ExitCode, type ExitName } from "../errors.ts";
import { JOURNAL_PRIORITY } from "../output/journal.ts";
import type { Level, Output } from "../output/logger.ts";
import { formatJson } from "../output/report.ts";
import { escapeLine } from "../output/safe-text.ts";
import { type CliFlags, packageVersion } from "./program.ts";

export interface ProcessIo {
  /** Set once flags are read: a bug's stack is logged only with --verbose. */
  verbose: boolean;
  /**
   * The logger once its format is known (from the start when the command line or the
   * environment asks for JSON); before that, bugs and warnings go to stderr as human lines.
   */
  out: Output | undefined;
  /** A random UUID naming this run in its report, log lines and pings; early documents too. */
  readonly runId: string;
  /** stderr is the systemd journal: every line starts with its syslog priority. */
  readonly journal: boolean;
  /** Lines to stderr before (or without) a logger, each with its priority on the journal. */
  stderr(level: Level, text: string): Promise<boolean>;
  /** Set with --json: a bug still prints the one JSON document. */
  jsonFlags: CliFlags | undefined;
  /** Writes to stdout (pieces one after another); false when it could not be written. */
  write(text: string | Iterable<string>): Promise<boolean>;
  /** Prints the JSON report of a run that ended before any sweep started. */
  early(exitCode: ExitCode, code: ExitName, message: string, flags?: CliFlags): Promise<void>;
  /** That report's text, as `early` prints it (for --report-file). */
  earlyJson(exitCode: ExitCode, code: ExitName, message: string, flags?: CliFlags): Promise<string>;
  /** A bug: one line (the stack with --verbose), the JSON document with --json; exit 70. */
  internal(error: unknown): Promise<ExitCode>;
  /** A warning (Node's process warnings): through the logger, else a human line. */
  warn(message: string): void;
  /** Waits for stdout and stderr to drain (bounded), then ends the process. */
  exit(code: number): Promise<never>;
}

/** How long the end of a run waits for a stuck stdout or stderr reader. */
const DRAIN_MS = 5_000;

/** stdout and stderr as a run uses them: stdout failures are remembered, stderr is best effort. */
export function processIo(): ProcessIo {
  // Without listeners, an EPIPE (a reader gone: `| head`) would be an uncaught exception.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  const put = (stream: NodeJS.WriteStream, text: string) =>
    new Promise<boolean>((resolve) => {
      try {
        stream.write(text, (error) => resolve(!error));
      } catch {
        resolve(false);
      }
    });
  const journal = stderrIsJournal(process.env.JOURNAL_STREAM);
  const io: ProcessIo = {
    verbose: false,
    runId: randomUUID(),
    journal,
    stderr: (level, text) =>
      put(process.stderr, `${text.replace(/^/gm, journal ? JOURNAL_PRIORITY[level] : "")}\n`),
    out: undefined,
    jsonFlags: undefined,
    async write(text) {
      if (typeof text === "string") return put(process.stdout, text);
      // Each piece once the previous one is flushed: the pipe, not the heap, holds the backlog.
      for (const piece of text) if (!(await put(process.stdout, piece))) return false;
      return true;
    },
    async early(exitCode, code, message, flags) {
      await io.write(await io.earlyJson(exitCode, code, message, flags));
    },
    async earlyJson(exitCode, code, message, flags = {}) {
      const now = new Date();
      const report = buildReport({
        runId: io.runId,
        startedAt: now,
        finishedAt: now,
        schedulerVersion: packageVersion(),
        dryRun: flags.dryRun === true,
        concurrency: mostInFlight(flags.concurrency ?? DEFAULTS.concurrency),
        exitCode,
        error: { code, message },
        patients: [],
      });
      return formatJson(report);
    },
    async internal(error) {
      try {
        const message = `Internal error (a bug, please report it): ${describeBug(error)}`;
        const stack = error instanceof Error && io.verbose ? (error.stack ?? null) : null;
        if (io.out) io.out.error(message, { code: "internal", ...(stack && { stack }) });
        else
          await io.stderr(
            "error",
            `ml-scheduler: ${escapeLine(message)}${stack ? `\n${stack}` : ""}`,
          );
        if (io.jsonFlags) await io.early(EXIT.internal, "internal", message, io.jsonFlags);
      } catch {
        // Reporting a bug hit the bug again: the exit code still says what happened.
      }
      return EXIT.internal;
    },
    warn(message) {
      if (io.out) io.out.warn(message);
      else void io.stderr("warn", `[warn] ${escapeLine(message)}`);
    },
    async exit(code) {
      const drained = Promise.all([put(process.stdout, ""), put(process.stderr, "")]);
      await Promise.race([drained, new Promise((r) => setTimeout(r, DRAIN_MS).unref())]);
      process.exit(code);
    },
  };
  return io;
}

/** A bug's one line: its name and message, cut short (a message is not ours to trust). */
function describeBug(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const line = text.split("\n")[0] ?? "";
  return line.length > 200 ? `${line.slice(0, 200)}...` : line;
}

/**
 * Whether stderr is the systemd journal: JOURNAL_STREAM (`<device>:<inode>`, in decimal) names
 * stderr's own file, as systemd.exec(5) says to check; a child whose stderr was redirected
 * elsewhere inherits the variable but not the stream.
 */
function stderrIsJournal(stream: string | undefined): boolean {
  if (!stream) return false;
  try {
    const { dev, ino } = fstatSync(2, { bigint: true });
    return stream === `${dev}:${ino}`;
  } catch {
    return false;
  }
}
