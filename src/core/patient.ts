/**
 * One patient's step: vitals, prediction, write. Every failure becomes data (stage and reason);
 * an exception that escapes from here is a bug.
 */

import { AuthError, SchedulerError } from "../errors.ts";
import type { BackendClient } from "../services/backend.ts";
import { RequestFailure, type Service } from "../services/http.ts";
import type { MlClient } from "../services/ml.ts";
import type { Patient } from "../services/schemas.ts";
import type { PatientResult, Stage } from "./report.ts";

/** A prediction needs exactly this many records, newest first. */
export const VITALS_NEEDED = 5;

export interface PatientContext {
  backend: BackendClient;
  ml: MlClient;
  dryRun: boolean;
  /** Aborted: in-flight requests stop and no write starts. */
  signal?: AbortSignal | undefined;
}

/** Which service each stage talks to. */
const SERVICE_OF: Record<Stage, Service | undefined> = {
  select: undefined,
  vitals: "backend",
  predict: "ml",
  update: "backend",
};

export interface PatientStep {
  result: PatientResult;
  /** Set when the failure means no further patient may start (exit 4 or 5). */
  fatal?: SchedulerError | undefined;
  /**
   * What this patient showed of each service it reached: `up` when it answered (anything but
   * 408, 429 or 5xx), `down` when its last request found it unavailable. Feeds the breaker.
   */
  verdicts: Partial<Record<Service, "up" | "down">>;
}

export async function sweepPatient(patient: Patient, ctx: PatientContext): Promise<PatientStep> {
  const { pid } = patient;
  const from = patient.status.id;
  let stage: Stage = "vitals";
  let to: number | null = null;
  const verdicts: PatientStep["verdicts"] = {};
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
    verdicts,
    ...extra,
  });
  try {
    const vitals = await ctx.backend.fetchVitals(pid, VITALS_NEEDED);
    verdicts.backend = "up";
    if (vitals.length < VITALS_NEEDED) {
      return step({ outcome: "skipped", stage, reason: "insufficient_vitals" });
    }
    stage = "predict";
    to = await ctx.ml.predict(vitals);
    verdicts.ml = "up";
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
    const service = SERVICE_OF[stage];
    if (service !== undefined && outcome === "failed") {
      verdicts[service] = error.unavailable ? "down" : "up";
    }
    return step({ outcome, stage, reason: error.reason, detail: error.message });
  }
}
