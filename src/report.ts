/**
 * The sweep's report: one entry per patient, counts that add up, and the two ways to print it.
 * Patients appear by pid and status ids only.
 */
import type { ExitCode } from "./errors.ts";

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
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  dryRun: boolean;
  concurrency: number;
  exitCode: ExitCode;
  error: { code: string; message: string } | null;
  counts: Counts;
  patients: PatientResult[];
}

export interface ReportInput {
  startedAt: Date;
  finishedAt: Date;
  dryRun: boolean;
  concurrency: number;
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
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
    durationMs: input.finishedAt.getTime() - input.startedAt.getTime(),
    dryRun: input.dryRun,
    concurrency: input.concurrency,
    exitCode: input.exitCode,
    error: input.error,
    counts,
    patients: input.patients.toSorted(byPid),
  };
}

function byPid(a: PatientResult, b: PatientResult): number {
  return (a.pid ?? Number.MAX_SAFE_INTEGER) - (b.pid ?? Number.MAX_SAFE_INTEGER);
}

/** Outcomes worth a line of their own in the human form. */
const LISTED: ReadonlySet<Outcome> = new Set(["updated", "would_update", "failed", "interrupted"]);

export function formatHuman(report: Report): string {
  const c = report.counts;
  const lines = [
    `${report.dryRun ? "Dry run: " : ""}${c.selected} patients in ${(report.durationMs / 1000).toFixed(1)}s: ` +
      OUTCOMES.filter((o) => c[o] > 0 || o === "failed")
        .map((o) => `${c[o]} ${o.replace("_", " ")}`)
        .join(", "),
  ];
  for (const p of report.patients) {
    if (!LISTED.has(p.outcome)) continue;
    lines.push(`  ${p.pid === null ? "pid ?" : `pid ${p.pid}`}: ${describe(p)}`);
  }
  if (report.error) lines.push(`Error (${report.error.code}): ${report.error.message}`);
  lines.push(`Exit code ${report.exitCode}`);
  return `${lines.join("\n")}\n`;
}

function describe(p: PatientResult): string {
  if (p.outcome === "updated") return `status ${p.from} -> ${p.to}`;
  if (p.outcome === "would_update") return `status ${p.from} -> ${p.to} (not written: dry run)`;
  return `${p.outcome} at ${p.stage}: ${p.reason}${p.detail ? ` (${p.detail})` : ""}`;
}

export function formatJson(report: Report): string {
  return `${JSON.stringify(report)}\n`;
}
