/**
 * One patient's step: vitals, prediction, write. Every failure becomes data (stage and reason);
 * an exception that escapes from here is a bug.
 */

import { AuthError, SchedulerError } from "../errors.ts";
import type { BackendClient } from "../services/backend.ts";
import { RequestFailure } from "../services/failure.ts";
import type { Service } from "../services/http.ts";
import { type MlClient, predictBody } from "../services/ml.ts";
import { type Patient, timestampMs, type Vital } from "../services/schemas.ts";
import type { PatientResult, Reason, Stage } from "./report.ts";

/** A prediction needs exactly this many records, newest first. */
export const VITALS_NEEDED = 5;

/** How far a vital record's timestamp may lie ahead of this clock before it is invalid data. */
export const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * What earlier runs predicted (incremental sweeps), as the sweep sees it: a plain interface, so
 * that the core stays pure; host/predictions.ts keeps it in the state directory. `question` is
 * exactly the body sent to `/predict` (JSON text).
 */
export interface PredictionMemory {
  /** The status remembered for this patient and question, when it may be reused now. */
  recall(pid: number, question: string): number | undefined;
  /** The ML server's answer to this question, just made. */
  remember(pid: number, question: string, status: number): void;
}

export interface PatientContext {
  backend: BackendClient;
  ml: MlClient;
  dryRun: boolean;
  /** Where remembered predictions are reused from and fresh ones go; undefined: none. */
  memory?: PredictionMemory | undefined;
  /** The newest vital record must be at most this old (ms); undefined: no guard. */
  maxVitalsAgeMs?: number | undefined;
  /** Epoch ms now (the freshness guard's clock). */
  now?: (() => number) | undefined;
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
  /** Where the status came from: the ML server, or a remembered prediction; unset: neither. */
  prediction?: "ml" | "reused" | undefined;
}

export async function sweepPatient(patient: Patient, ctx: PatientContext): Promise<PatientStep> {
  const { pid } = patient;
  const from = patient.status.id;
  let stage: Stage = "vitals";
  let to: number | null = null;
  let prediction: PatientStep["prediction"];
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
    prediction,
    ...extra,
  });
  try {
    const vitals = await ctx.backend.fetchVitals(pid, VITALS_NEEDED);
    verdicts.backend = "up";
    if (vitals.length < VITALS_NEEDED) {
      return step({ outcome: "skipped", stage, reason: "insufficient_vitals" });
    }
    if (ctx.maxVitalsAgeMs !== undefined) {
      const stale = freshness(vitals, ctx.maxVitalsAgeMs, (ctx.now ?? Date.now)());
      if (stale) return step({ ...stale, stage });
    }
    stage = "predict";
    const question = JSON.stringify(predictBody(vitals));
    const remembered = ctx.memory?.recall(pid, question);
    if (remembered === undefined) {
      to = await ctx.ml.predict(vitals);
      verdicts.ml = "up";
      prediction = "ml";
      ctx.memory?.remember(pid, question, to);
    } else {
      to = remembered;
      prediction = "reused";
    }
    // From here on the status is known, whoever answered it: the write is the same either way.
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

/**
 * `--max-vitals-age`: why these records (newest first) may not be predicted from, or undefined
 * when they may. A record without a timestamp cannot meet the guard, so it fails rather than
 * passes; one further ahead than the clock skew is invalid data, never fresh.
 */
export function freshness(
  vitals: Vital[],
  maxAgeMs: number,
  now: number,
): Pick<PatientResult, "outcome" | "reason" | "detail"> | undefined {
  const failed = (reason: Reason, detail: string) => ({
    outcome: "failed" as const,
    reason,
    detail,
  });
  if (vitals.some((v) => v.timestamp === undefined)) {
    return failed(
      "no_vitals_timestamp",
      "the vital records carry no timestamp, so --max-vitals-age cannot be checked",
    );
  }
  const times = vitals.map((v) => timestampMs(v.timestamp ?? ""));
  const newest = Math.max(...times);
  if (times.some((t) => t > now + CLOCK_SKEW_MS)) {
    return failed(
      "invalid_vitals",
      `a vital record is dated more than ${CLOCK_SKEW_MS / 60_000} minutes in the future`,
    );
  }
  if (now - newest > maxAgeMs) {
    // Its age is not given: when a patient was measured is theirs, like the values.
    return {
      outcome: "skipped",
      reason: "stale_vitals",
      detail: "the newest vital record is older than --max-vitals-age",
    };
  }
  return undefined;
}
