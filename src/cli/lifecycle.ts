/**
 * The shape every command shares: what it is given and what it gives back. The lifecycle in
 * main.ts parses, resolves settings, takes the lock and wires signals, runs the command, prints
 * its result, notifies and exits; a command only does its own work.
 */
import type { SweepEvent } from "../core/events.ts";
import type { Report } from "../core/report.ts";
import type { ExitCode } from "../errors.ts";
import type { RunSettings } from "./config.ts";
import type { CommandName } from "./program.ts";

export interface CommandContext {
  /** A random UUID naming this run in its report, log lines and pings. */
  runId: string;
  settings: RunSettings;
  /** Aborted when in-flight requests must stop now (a second signal, a bug). */
  signal: AbortSignal;
  /** Aborted when no new work may start (a signal, the lock taken over); the reason is the run's. */
  stop: AbortSignal;
  /** Every event of the run, for the reporters and notifiers. */
  onEvent: (event: SweepEvent) => void;
  /** A problem that does not change how the run ends (an unusable --state-dir). */
  warn: (message: string) => void;
}

export interface CommandResult {
  exitCode: ExitCode;
  error: { code: string; message: string } | null;
  /** The sweep's report, for notifiers that count patients. */
  report?: Report | undefined;
  /**
   * The one JSON document of --json, in pieces to write one after another: 100,000 patients make
   * a 10 MB document, which as one string (and its UTF-8 copy) would be the run's peak memory.
   */
  json(): Iterable<string>;
  /** The human form printed by default. */
  human(): string;
}

export interface CommandSpec {
  /** Whether `--lock` applies: only commands that write take it. */
  locks: boolean;
  run(ctx: CommandContext): Promise<CommandResult>;
}

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
 * never throws and never changes the exit code; it says what went wrong through `warn`.
 */
export interface Notifier {
  /** The command is about to start its work (settings read, lock taken). */
  start?(run: RunFacts): Promise<void>;
  /** Every event of the command. */
  event?(event: SweepEvent): void;
  /** The run ended, also when it ended before its command started. */
  finish(end: RunEnd): Promise<void>;
}

/** What a notifier is built from: every option's value, and where its warnings go. */
export interface NotifierContext {
  options: Record<string, unknown>;
  warn: (message: string) => void;
  /**
   * Aborted when the notifiers must stop now (a second signal): a request in flight is aborted
   * and none starts. The lifecycle has said so already, so a notifier stays quiet about it.
   */
  signal: AbortSignal;
}

/** Builds a notifier when its options are set, else undefined. */
export type NotifierFactory = (ctx: NotifierContext) => Notifier | undefined;
