/**
 * One prediction sweep: authenticate, check the ML server, fetch the patients, then for each
 * selected patient (at most `concurrency` at a time) fetch vitals, predict and write the status.
 * Never reads the environment, never prints, never exits: progress leaves through callbacks.
 */
import pLimit, { type LimitFunction } from "p-limit";
import { EXIT, pickExitCode, SchedulerError } from "../errors.ts";
import { createBackend } from "../services/backend.ts";
import type { Credentials } from "../services/backend-auth.ts";
import type { AttemptRecord, RequestRecord, ServiceSettings } from "../services/http.ts";
import { createMl } from "../services/ml.ts";
import type { Patient } from "../services/schemas.ts";
import type { SweepEvent } from "./events.ts";
import { queueOf } from "./order.ts";
import { adaptivePacing, fixedPacing, type Pacing } from "./pacing.ts";
import { type PredictionMemory, sweepPatient } from "./patient.ts";
import { prepare } from "./prepare.ts";
import { buildReport, type PatientResult, type Report } from "./report.ts";
import { ResultList } from "./results.ts";
import type { Shard } from "./select.ts";
import { createStops, createThresholds } from "./stops.ts";

/** Rounds of `concurrency` patients handed to p-limit at once. */
const WINDOW_ROUNDS = 64;

/** Everything a sweep needs to know; the CLI builds it from flags and environment. */
export interface SweepConfig extends Omit<ServiceSettings, "baseUrl"> {
  patientServer: string;
  mlServer: string;
  credentials: Credentials;
  /** A longer patient list is a contract break; undefined: DEFAULTS.maxListMib MiB. */
  maxListBytes?: number | undefined;
  /** Patients handled at the same time; with `adaptive`, the most at the same time. */
  concurrency: number;
  /** Let a limiter choose the concurrency, from 1 up to `concurrency`, by the services' answers. */
  adaptive?: boolean | undefined;
  /** Predict but never write. */
  dryRun: boolean;
  /** Only these pids; undefined means every patient. */
  patients?: number[] | undefined;
  /** Only the pids of this shard (with `patients`: those of both); undefined means no sharding. */
  shard?: Shard | undefined;
  /** Stop starting patients after this many in a row failed because a service is down. */
  breaker: number;
  /** Stop starting patients after this many failed of any kind. */
  maxFailures?: number | undefined;
  /** Seconds from the start after which no new patient starts. */
  deadlineSeconds?: number | undefined;
  /** After a stop (signal, deadline), seconds in-flight patients get before they are aborted. */
  graceSeconds: number;
  /**
   * Start at this index (taken modulo their number) of the selected patients in pid order, and
   * wrap around: runs cut short then take turns at the list (see `nextOffset`). The backend's own
   * order (by status, then arbitrary, changing as statuses do) could not be taken in turns.
   * Undefined: the backend's order, from its first patient.
   */
  offset?: number | undefined;
  /**
   * Skip a patient whose newest vital record is older than this (ms) as `stale_vitals`; records
   * without timestamps then fail (`no_vitals_timestamp`). Undefined: no guard.
   */
  maxVitalsAgeMs?: number | undefined;
}

export interface SweepOptions {
  /** Aborting it stops the sweep now: no new patient starts and in-flight requests are aborted. */
  signal?: AbortSignal | undefined;
  /**
   * Aborting it stops the sweep gracefully: no new patient starts, in-flight ones get
   * `graceSeconds`, then their requests are aborted. A SchedulerError reason becomes the run's.
   */
  stop?: AbortSignal | undefined;
  /** The run's id, carried into the report (the CLI makes a random UUID). */
  runId?: string | undefined;
  /** The caller's version, carried into the report's `schedulerVersion` (the CLI's package's). */
  schedulerVersion?: string | undefined;
  /** Every fact of the run as it happens (see SweepEvent); a throw here is a bug (exit 70). */
  onEvent?: ((event: SweepEvent) => void) | undefined;
  /** The token of every login, re-logins included (see BackendOptions.onToken); never printed. */
  onToken?: ((token: string) => void) | undefined;
  /**
   * Predictions remembered by earlier runs, reused for the same question, and where this run's go
   * (the CLI keeps them in --state-dir); undefined: every status is asked of the ML server.
   */
  memory?: PredictionMemory | undefined;
  /** Epoch ms now, for the vitals' age; Date.now unless given. */
  now?: (() => number) | undefined;
}

/**
 * Runs one sweep and reports it; expected failures end up in the report, never thrown. A bug (any
 * exception that is not a SchedulerError) stops the sweep, aborts in-flight requests and rejects.
 */
export async function runSweep(config: SweepConfig, options: SweepOptions = {}): Promise<Report> {
  const startedAt = new Date();
  const results = new ResultList();
  const predictions = { made: 0, reused: 0 };
  /** What ended the run before the patients (exit 4 or 5, or the stop that cut it short). */
  let error: SchedulerError | undefined;
  let bug: { error: unknown } | undefined;
  /** Patients not yet started; before the list is known, the steps before them. */
  let waiting = Number.POSITIVE_INFINITY;
  let inFlight = 0;
  let preparing = true;
  /** Where the selected list started (see SweepConfig.offset); 0 until it is known. */
  let offset = 0;
  const emit = (event: SweepEvent) => options.onEvent?.(event);
  const stops = createStops(config, {
    signal: options.signal,
    stop: options.stop,
    waiting: () => waiting > 0,
    busy: () => inFlight > 0,
    preparing: () => preparing,
    onStop: (reason) => emit({ type: "stopped", code: reason.code, message: reason.message }),
  });
  const fail = (caught: unknown) => {
    bug ??= { error: caught };
    stops.abortNow(caught);
  };
  const report = (result: PatientResult, durationMs = 0, prediction?: "ml" | "reused") => {
    if (bug) return; // the run rejects: nothing more is reported
    results.push(result);
    if (prediction === "ml") predictions.made++;
    if (prediction === "reused") predictions.reused++;
    const reused = prediction === "reused" ? { reused: true } : {};
    emit({ type: "patient_done", result, durationMs, ...reused });
  };

  /** The patients' p-limit once they start: the pacing may change its concurrency at any time. */
  let slots: LimitFunction | undefined;
  const pacing: Pacing = config.adaptive
    ? adaptivePacing({
        max: config.concurrency,
        demand: () => (slots?.pendingCount ?? 0) > 0,
        onChange: (concurrency, cause) => {
          if (slots) slots.concurrency = concurrency;
          emit({ type: "concurrency_changed", concurrency, cause });
        },
      })
    : fixedPacing(config.concurrency);

  try {
    const { signal } = stops;
    const onRequest = (record: RequestRecord) => emit({ type: "request_done", ...record });
    // Called from got's hooks, where a throw would pass for a failed request: a bug is a bug.
    // Only an adaptive limiter learns from attempts; without one, got runs no hook at all.
    const onAttempt = config.adaptive
      ? (attempt: AttemptRecord) => {
          try {
            pacing.observe(attempt);
          } catch (caught) {
            fail(caught);
          }
        }
      : undefined;
    const hooks = { signal, onRequest, onAttempt };
    const backend = createBackend({
      ...config,
      baseUrl: config.patientServer,
      ...hooks,
      onToken: options.onToken,
    });
    const ml = createMl({ ...config, baseUrl: config.mlServer, ...hooks });
    const { selected: listed, rejected } = await prepare(backend, ml, config, emit, stops);
    offset = listed.length === 0 ? 0 : (config.offset ?? 0) % listed.length;
    const queue = queueOf(listed, config.offset === undefined ? undefined : offset);
    preparing = false;
    waiting = queue.length;
    emit({ type: "run_started", patients: queue.length + rejected.length });
    for (const r of rejected) report(r);

    const thresholds = createThresholds(config);
    const limit = pLimit(pacing.concurrency);
    slots = limit;
    const handle = async (patient: Patient) => {
      waiting--;
      try {
        if (stops.halted || bug) {
          stops.keptWaiting();
          return report(notStarted(patient));
        }
        inFlight++;
        const started = performance.now();
        const step = await sweepPatient(patient, {
          backend,
          ml,
          dryRun: config.dryRun,
          memory: options.memory,
          maxVitalsAgeMs: config.maxVitalsAgeMs,
          now: options.now,
          signal,
        }).finally(() => inFlight--);
        report(step.result, Math.round(performance.now() - started), step.prediction);
        const cause =
          step.fatal ?? thresholds.record(step.verdicts, step.result.outcome === "failed");
        if (cause) stops.halt(cause);
      } catch (caught) {
        // A bug: stop starting patients and abort the others; runSweep rejects once they settle.
        fail(caught);
      }
    };
    // Patients reach p-limit a window at a time: 100,000 queued tasks would cost ~90 MB of heap.
    // A window is many rounds long, so waiting for its slowest patient costs little. A window
    // leaves the queue as it starts: a patient handled is garbage (results.ts keeps its result).
    const window = Math.max(WINDOW_ROUNDS * config.concurrency, 256);
    while (queue.length > 0) await limit.map(queue.splice(-window).reverse(), handle);
  } catch (caught) {
    if (caught instanceof SchedulerError && !bug) error = caught;
    else fail(caught);
  } finally {
    preparing = false;
    stops.dispose();
  }
  if (bug) throw bug.error;

  const causes = [error, stops.cause].filter((c) => c !== undefined);
  const failed = results.failed;
  const exitCode = pickExitCode([
    ...causes.map((c) => c.exitCode),
    ...(failed ? [EXIT.patients_failed] : []),
  ]);
  const ended = causes.find((c) => c.exitCode === exitCode);
  return buildReport({
    runId: options.runId,
    schedulerVersion: options.schedulerVersion,
    startedAt,
    finishedAt: new Date(),
    dryRun: config.dryRun,
    concurrency: config.concurrency,
    adaptive: pacing.range(),
    offset,
    shard: config.shard,
    exitCode,
    error: ended ? { code: ended.code, message: ended.message } : null,
    patients: results.toArray(),
    predictions,
  });
}

function notStarted(patient: Patient): PatientResult {
  const { pid, status } = patient;
  return {
    pid,
    outcome: "not_started",
    from: status.id,
    to: null,
    stage: null,
    reason: null,
    detail: null,
  };
}
