/**
 * What a notifier is: told of a run's start, its events and its end, besides the report. The
 * lifecycle in cli/main.ts calls these; each notifier in this folder builds one.
 */
import type { Options } from "../config/options.ts";
import type { SweepEvent } from "../core/events.ts";
import type { Report } from "../core/report.ts";
import type { ExitCode } from "../errors.ts";

/** The commands a run may be. */
export type CommandName = "sweep" | "check";

/** What every notifier knows of a run from its start. */
export interface RunFacts {
  runId: string;
  command: CommandName;
  startedAt: Date;
  /**
   * When set, the epoch milliseconds by which the process must have ended (the deadline's hard
   * bound): a notifier's requests stay within it.
   */
  endBy: number | undefined;
  /** What is running: the package's version and Node's (`v24.x.y`), for the build-info metric. */
  build: BuildInfo;
}

export interface BuildInfo {
  version: string;
  node: string;
}

/** How a run ended: after its command, or before it (exit 2-7, `report` undefined). */
export interface RunEnd extends RunFacts {
  finishedAt: Date;
  exitCode: ExitCode;
  error: { code: string; message: string } | null;
  report?: Report | undefined;
}

/**
 * Something told about a run besides its report: metrics, pushes, pings. Best effort: a notifier
 * never throws and never changes the exit code; it says what went wrong through `fail`.
 */
export interface Notifier {
  /** The command is about to start its work (settings read, lock taken). */
  start?(run: RunFacts): Promise<void>;
  /** Every event of the command. */
  event?(event: SweepEvent): void;
  /** The run ended, also when it ended before its command started. */
  finish(end: RunEnd): Promise<void>;
}

/** What a notifier is built from: every option's value, and where its failures go. */
export interface NotifierContext {
  options: Options;
  /**
   * One line for a failure (a write, a push or a ping that did not land; a notifier that cannot
   * work as configured), said at error level whatever the verbosity, --quiet included: the
   * monitoring is what broke, and cron mails only errors. It never changes the exit code.
   */
  fail: (message: string) => void;
  /**
   * Aborted when the notifiers must stop now (a second signal): a request in flight is aborted
   * and none starts. The lifecycle has said so already, so a notifier stays quiet about it.
   */
  signal: AbortSignal;
}

/** Builds a notifier when its options are set, else undefined. */
export type NotifierFactory = (ctx: NotifierContext) => Notifier | undefined;
