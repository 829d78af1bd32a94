/**
 * The sweep's report: one entry per patient and counts that add up. Patients appear by pid and
 * status ids only; reporters/report.ts prints it.
 */
import type { ExitCode } from "../errors.ts";
import type { ConcurrencyRange } from "./pacing.ts";

export const OUTCOMES = [
  "updated",
  "would_update",
  "unchanged",
  "skipped",
  "failed",
  "interrupted",
  "not_started",
] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** Where a patient's handling stood when it ended. */
export type Stage = "select" | "vitals" | "predict" | "update";

/** What happened to one patient. `from` and `to` are status ids. */
export interface PatientResult {
  pid: number | null;
  outcome: Outcome;
  from: number | null;
  to: number | null;
  stage: Stage | null;
  /** Stable snake_case code: `insufficient_vitals`, `not_found`, `http_500`, `timeout`, ... */
  reason: string | null;
  /** One line: route, HTTP status, failing field paths; never a received value. */
  detail: string | null;
}

export type Counts = { selected: number } & Record<Outcome, number>;

/** The report as `--json` prints it (version 1). */
export interface Report {
  version: 1;
  /** The run's id, as in its log lines and pings; null when the caller gave none. */
  runId: string | null;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  dryRun: boolean;
  /** The configured number, or the most `--concurrency auto` allowed. */
  concurrency: number;
  /** With `--concurrency auto`, the concurrency it used (lowest, highest, last); else null. */
  adaptive: ConcurrencyRange | null;
  exitCode: ExitCode;
  error: { code: string; message: string } | null;
  counts: Counts;
  patients: PatientResult[];
}

export interface ReportInput {
  /** The run's id (a random UUID from the CLI), null when the caller gave none. */
  runId?: string | null | undefined;
  startedAt: Date;
  finishedAt: Date;
  dryRun: boolean;
  concurrency: number;
  adaptive?: ConcurrencyRange | null | undefined;
  exitCode: ExitCode;
  error: { code: string; message: string } | null;
  patients: PatientResult[];
}

export function buildReport(input: ReportInput): Report {
  const counts = { selected: input.patients.length } as Counts;
  for (const o of OUTCOMES) counts[o] = 0;
  for (const p of input.patients) counts[p.outcome]++;
  return {
    version: 1,
    runId: input.runId ?? null,
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
    durationMs: input.finishedAt.getTime() - input.startedAt.getTime(),
    dryRun: input.dryRun,
    concurrency: input.concurrency,
    adaptive: input.adaptive ?? null,
    exitCode: input.exitCode,
    error: input.error,
    counts,
    patients: input.patients.toSorted(byPid),
  };
}

function byPid(a: PatientResult, b: PatientResult): number {
  return (a.pid ?? Number.MAX_SAFE_INTEGER) - (b.pid ?? Number.MAX_SAFE_INTEGER);
}
