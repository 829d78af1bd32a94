/**
 * The shape every command shares: what it is given and what it gives back. The lifecycle in
 * main.ts parses, resolves settings, takes the lock and wires signals, runs the command, prints
 * its result, notifies and exits; a command only does its own work.
 */

import type { RunSettings } from "../config/settings.ts";
import type { SweepEvent } from "../core/events.ts";
import type { Report } from "../core/report.ts";
import type { ExitCode } from "../errors.ts";

export interface CommandContext {
  /** A random UUID naming this run in its report, log lines and pings. */
  runId: string;
  /** The package's version, for the report's `schedulerVersion`. */
  schedulerVersion: string;
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
