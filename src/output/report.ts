/**
 * The report's two printed forms: the human summary and the one JSON document of `--json`.
 */
import type { CheckReport, CheckStep } from "../core/check.ts";
import { OUTCOMES, type Outcome, type PatientResult, type Report } from "../core/report.ts";
import { escapeLine, safeJson } from "./safe-text.ts";

/** Outcomes worth a line of their own in the human form. */
const LISTED: ReadonlySet<Outcome> = new Set(["updated", "would_update", "failed", "interrupted"]);

/** The human form: the counts, one line per patient worth one, the error and the exit code. */
export function formatHuman(report: Report): string {
  const { error } = report;
  // A run that ended before its first patient (the login, the ML check or the patient list
  // failed; a signal or the deadline came first) has no counts worth leading with.
  if (error && report.patients.length === 0) {
    return `No patient was swept (${error.code}): ${escapeLine(error.message)}\nExit code ${report.exitCode}\n`;
  }
  const c = report.counts;
  const lines = [
    `${report.dryRun ? "Dry run: " : ""}${c.selected} patients in ${(report.durationMs / 1000).toFixed(1)}s: ` +
      OUTCOMES.filter((o) => c[o] > 0 || o === "failed")
        .map((o) => `${c[o]} ${o.replace("_", " ")}`)
        .join(", "),
  ];
  const { made, reused } = report.predictions;
  if (reused > 0) lines.push(`Predictions: ${made} made, ${reused} reused`);
  for (const p of report.patients) {
    if (!LISTED.has(p.outcome)) continue;
    lines.push(`  ${p.pid === null ? "pid ?" : `pid ${p.pid}`}: ${describe(p)}`);
  }
  if (error) lines.push(`Error (${error.code}): ${escapeLine(error.message)}`);
  lines.push(`Exit code ${report.exitCode}`);
  return `${lines.join("\n")}\n`;
}

function describe(p: PatientResult): string {
  if (p.outcome === "updated") return `status ${p.from} -> ${p.to}`;
  if (p.outcome === "would_update") return `status ${p.from} -> ${p.to} (not written: dry run)`;
  return `${p.outcome} at ${p.stage}: ${p.reason}${p.detail ? ` (${escapeLine(p.detail)})` : ""}`;
}

/** The JSON form: one line, `patients` last (as buildReport orders the keys). */
export function formatJson(report: Report): string {
  return [...jsonPieces(report)].join("");
}

/** How long a piece of `jsonPieces` grows before it is handed over, in characters. */
const PIECE_CHARS = 64 * 1024;

/**
 * `formatJson`'s text in pieces of about 64 KiB, each patient's entry stringified on its own: the
 * whole document never exists as one string.
 */
export function* jsonPieces(report: Report): Generator<string> {
  const { patients, ...rest } = report;
  // The empty array and the closing brace end the head: the entries go between.
  // safeJson: a `detail` or `error.message` from a service never splits or reverses the line.
  let piece = safeJson({ ...rest, patients: [] }).slice(0, -2);
  for (const [i, patient] of patients.entries()) {
    piece += `${i === 0 ? "" : ","}${safeJson(patient)}`;
    if (piece.length >= PIECE_CHARS) {
      yield piece;
      piece = "";
    }
  }
  yield `${piece}]}\n`;
}

const STEP_NAMES: Record<CheckStep["step"], string> = {
  login: "login",
  ml_server: "ML server",
  patient_list: "patient list",
  vitals: "vitals",
};

/** The check's JSON form: one line. */
export function formatCheckJson(report: CheckReport): string {
  return `${safeJson(report)}\n`;
}

/** The check's human form: one line per step, then the error and the exit code. */
export function formatCheckHuman(report: CheckReport): string {
  const lines = report.steps.map(
    (s) =>
      `${STEP_NAMES[s.step]}: ${s.warning ? "WARNING" : s.ok ? "ok" : "FAILED"} (${escapeLine(s.detail)})`,
  );
  lines.push(`Exit code ${report.exitCode}`);
  return `${lines.join("\n")}\n`;
}
