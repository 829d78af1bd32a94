/**
 * One patient's step: vitals, prediction, write. Every failure becomes data (stage and reason);
 * an exception that escapes from here is a bug.
 */
import type { BackendClient } from "./backend.ts";
import { AuthError, SchedulerError } from "./errors.ts";
import { RequestFailure } from "./http.ts";
import type { MlClient } from "./ml.ts";
import type { PatientResult, Stage } from "./report.ts";
import type { Patient } from "./schemas.ts";

/** A prediction needs exactly this many records, newest first. */
export const VITALS_NEEDED = 5;

export interface PatientContext {
  backend: BackendClient;
  ml: MlClient;
  dryRun: boolean;
  /** Aborted: in-flight requests stop and no write starts. */
  signal?: AbortSignal | undefined;
}

export interface PatientStep {
  result: PatientResult;
  /** Set when the failure means no further patient may start (exit 4 or 5). */
  fatal?: SchedulerError | undefined;
  /** The failure says a service is down (counts toward the breaker). */
  unavailable: boolean;
}

export async function sweepPatient(patient: Patient, ctx: PatientContext): Promise<PatientStep> {
  const { pid } = patient;
  const from = patient.status.id;
  let stage: Stage = "vitals";
  let to: number | null = null;
  const step = (fields: Partial<PatientResult>, extra?: Partial<PatientStep>): PatientStep => ({
    result: {
      pid,
      outcome: "failed",
      from,
      to,
      stage: null,
      reason: null,
      detail: null,
      ...fields,
    },
    unavailable: false,
    ...extra,
  });
  try {
    const vitals = await ctx.backend.fetchVitals(pid, VITALS_NEEDED);
    if (vitals.length < VITALS_NEEDED) {
      return step({ outcome: "skipped", stage, reason: "insufficient_vitals" });
    }
    stage = "predict";
    to = await ctx.ml.predict(vitals);
    if (to === from) return step({ outcome: "unchanged" });
    if (ctx.dryRun) return step({ outcome: "would_update" });
    stage = "update";
    if (ctx.signal?.aborted) {
      return step({ outcome: "interrupted", stage, reason: "aborted", detail: "write not sent" });
    }
    await ctx.backend.updateStatus(pid, to);
    return step({ outcome: "updated" });
  } catch (error) {
    if (error instanceof SchedulerError) {
      const reason = error instanceof AuthError ? "auth" : "relogin_failed";
      return step({ stage, reason, detail: error.message }, { fatal: error });
    }
    if (!(error instanceof RequestFailure)) throw error;
    const outcome = error.reason === "aborted" ? "interrupted" : "failed";
    return step(
      { outcome, stage, reason: error.reason, detail: error.message },
      { unavailable: error.unavailable },
    );
  }
}
