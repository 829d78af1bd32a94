/**
 * The words for each event and the level each is said at: a sweep's events as log lines, the
 * level of a run's ending, and the `run finished` line. human.ts says them as lines through
 * consola, json-log.ts as JSON objects.
 */
import type { SweepEvent } from "../core/events.ts";
import type { ConcurrencyCause } from "../core/pacing.ts";
import { OUTCOMES, type PatientResult } from "../core/report.ts";
import type { Service } from "../services/http.ts";
import type { Level, LogFields, RunSummary } from "./logger.ts";

/** The status table's ids (contract.md); any other id is shown as `status <id>`. */
const STATUS_NAMES: Readonly<Record<number, string>> = {
  1: "Alert",
  9: "Normal",
  10: "Unobserved",
};

function statusName(id: number | null): string {
  return id === null ? "no status" : (STATUS_NAMES[id] ?? `status ${id}`);
}

/** Why a patient was skipped, in words, by its reason code. */
const SKIP_REASONS: Readonly<Record<string, string>> = {
  insufficient_vitals: "fewer than five vitals, nothing to predict from",
  stale_vitals: "the newest vital record is older than --max-vitals-age",
};

/**
 * The level an ending is said at: a run that could not do its work because of a service, the
 * login, its settings or a bug is an error; one that stopped as asked (a signal, the deadline, a
 * threshold) or found another run holding the lock is a warning.
 */
export function endedLevel(code: string): Level {
  return ["auth", "upstream", "config", "usage", "internal", "io"].includes(code)
    ? "error"
    : "warn";
}

/**
 * The level of the `run finished` line: info on exit 0; warn when the run stopped short as asked
 * or by design (1 patients failed, 7 locked, 8 deadline); error otherwise. Under --quiet (errors
 * only) every non-zero exit is an error, so that cron mails it.
 */
export function finishedLevel(exitCode: number, quiet: boolean): Level {
  if (exitCode === 0) return "info";
  if (quiet) return "error";
  return [1, 7, 8].includes(exitCode) ? "warn" : "error";
}

/** `run finished: exit 1 (patients_failed) in 2.3s; 8 patients: 7 updated, 1 failed`. */
export function finishedMessage({ exitCode, exitName, durationMs, counts }: RunSummary): string {
  const head = `run finished: exit ${exitCode} (${exitName}) in ${(durationMs / 1000).toFixed(1)}s`;
  if (counts === null) return head;
  const shown = OUTCOMES.filter((o) => counts[o] > 0 || o === "failed");
  const parts = shown.map((o) => `${counts[o]} ${o.replace("_", " ")}`);
  return `${head}; ${counts.selected} patients: ${parts.join(", ")}`;
}

const SERVICE_NAMES: Readonly<Record<Service, string>> = { backend: "backend", ml: "ML server" };

const CAUSES: Readonly<Record<ConcurrencyCause, string>> = {
  headroom: "latency near its floor",
  latency: "latency climbing",
  overload: "a 429, 503, 504 or timeout",
};

/** One log line: its level, its words and its fields. */
export interface LogLine {
  level: Level;
  msg: string;
  fields: LogFields;
}

/**
 * An event as one log line, or undefined for one not worth a line. Request lines are debug and
 * carry the route without its query (a pid may sit there); patients appear by pid only.
 */
export function eventLine(event: SweepEvent): LogLine | undefined {
  switch (event.type) {
    case "run_started":
      return {
        level: "info",
        msg: `Sweeping ${event.patients} patients`,
        fields: { patients: event.patients },
      };
    case "patient_done":
      return patientLine(event.result, event.durationMs, event.reused === true);
    case "request_done": {
      const { service, route, status, attempts, durationMs, reason } = event;
      const tries = attempts === 1 ? "1 attempt" : `${attempts} attempts`;
      return {
        level: "debug",
        msg: `${SERVICE_NAMES[service]} ${route}: ${status ?? reason} (${tries}, ${durationMs} ms)`,
        fields: { service, route, status, attempts, duration_ms: durationMs, reason },
      };
    }
    case "stopped":
      return { level: endedLevel(event.code), msg: event.message, fields: { code: event.code } };
    case "concurrency_changed":
      return {
        level: "debug",
        msg: `Concurrency ${event.concurrency} (${CAUSES[event.cause]})`,
        fields: { concurrency: event.concurrency, cause: event.cause },
      };
    case "ml_probe_used":
      return {
        level: "info",
        msg: "ML server: GET /health did not answer true (a proxy in front?); POST /predict answered, so it is up.",
        fields: {},
      };
  }
}

function patientLine(result: PatientResult, durationMs: number, reused: boolean): LogLine {
  const { pid, outcome, stage, reason, from, to } = result;
  // `patient_id`, not `pid`: every log schema (ECS, pino, journald) means the process by `pid`.
  const fields: LogFields = {
    patient_id: pid,
    outcome,
    stage,
    reason,
    from,
    to,
    duration_ms: durationMs,
  };
  if (reused) fields.reused = true;
  const where = pid === null ? "a record without a pid" : `pid ${pid}`;
  if (outcome === "failed") {
    return { level: "warn", msg: `${where} failed at ${stage}: ${reason}`, fields };
  }
  let why = "";
  if (outcome === "skipped") why = `: ${SKIP_REASONS[reason ?? ""] ?? reason}`;
  else if (outcome === "unchanged") why = ` (${statusName(from)})`;
  else if (to !== null) why = ` (${statusName(from)} -> ${statusName(to)})`;
  else if (reason !== null) why = ` at ${stage}: ${reason}`;
  if (reused) why += ", from a remembered prediction";
  return { level: "debug", msg: `${where}: ${outcome.replace("_", " ")}${why}`, fields };
}
