/**
 * The shape every command shares: what it is given and what it gives back. The lifecycle in
 * main.ts parses, resolves settings, takes the lock and wires signals, runs the command, prints
 * its result, notifies and exits; a command only does its own work.
 */
import type { SweepEvent } from "../core/events.ts";
import type { Report } from "../core/report.ts";
import type { ExitCode } from "../errors.ts";
import type { RunSettings } from "./config.ts";

export interface CommandContext {
  settings: RunSettings;
  /** Aborted when in-flight requests must stop now (a second signal, a bug). */
  signal: AbortSignal;
  /** Aborted when no new work may start (a signal, the lock taken over); the reason is the run's. */
  stop: AbortSignal;
  /** Every event of the run, for the reporters and notifiers. */
  onEvent: (event: SweepEvent) => void;
}

export interface CommandResult {
  exitCode: ExitCode;
  error: { code: string; message: string } | null;
  /** The sweep's report, for notifiers that count patients. */
  report?: Report | undefined;
  /** The one JSON document of --json. */
  json(): string;
  /** The human form printed by default. */
  human(): string;
}

export interface CommandSpec {
  /** Whether `--lock` applies: only commands that write take it. */
  locks: boolean;
  run(ctx: CommandContext): Promise<CommandResult>;
}
