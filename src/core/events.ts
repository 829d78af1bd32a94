/**
 * What a sweep emits as it goes: one discriminated union of facts, never sentences. Reporters
 * (the human stderr lines, JSON log lines, metrics, pings) turn them into words or numbers.
 * Patients appear by pid and status ids only.
 */
import type { ExitName } from "../errors.ts";
import type { RequestRecord } from "../services/http.ts";
import type { ConcurrencyCause } from "./pacing.ts";
import type { PatientResult } from "./report.ts";

export type SweepEvent =
  /** The patient list is known: this many patients (rejected records included) will be reported. */
  | { type: "run_started"; patients: number }
  /**
   * One patient's handling ended; `durationMs` is 0 for a patient that never started. `reused`:
   * its status came from a remembered prediction, not from the ML server.
   */
  | { type: "patient_done"; result: PatientResult; durationMs: number; reused?: boolean }
  /** One request to a service ended, after its retries. */
  | ({ type: "request_done" } & RequestRecord)
  /**
   * No further patient starts, for this reason (a signal, the deadline, the breaker,
   * --max-failures, a 401/403, a failed re-login, the lock taken over); emitted once, when it happens.
   */
  | { type: "stopped"; code: ExitName; message: string }
  /** `GET /health` did not answer true; the empty `POST /predict` probe proved the ML server up. */
  | { type: "ml_probe_used" }
  /** `--concurrency auto` moved the number of patients in flight, for this cause. */
  | { type: "concurrency_changed"; concurrency: number; cause: ConcurrencyCause };

export type SweepEventType = SweepEvent["type"];
