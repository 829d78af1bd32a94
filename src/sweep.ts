/**
 * One prediction sweep: authenticate, check the ML server, fetch the patients, then for each
 * selected patient (at most `concurrency` at a time) fetch vitals, predict and write the status.
 * Never reads the environment, never prints, never exits: progress leaves through callbacks.
 */
import pLimit from "p-limit";
import { type BackendClient, type Credentials, createBackend } from "./backend.ts";
import { EXIT, pickExitCode, SchedulerError, UpstreamError } from "./errors.ts";
import { RequestFailure, type ServiceSettings } from "./http.ts";
import { createMl, type MlClient } from "./ml.ts";
import { sweepPatient } from "./patient.ts";
import { buildReport, type PatientResult, type Report } from "./report.ts";
import type { Patient } from "./schemas.ts";
import { type Selection, selectPatients } from "./select.ts";

/** Rounds of `concurrency` patients handed to p-limit at once. */
const WINDOW_ROUNDS = 64;

/** Everything a sweep needs to know; the CLI builds it from flags and environment. */
export interface SweepConfig extends Omit<ServiceSettings, "baseUrl"> {
  patientServer: string;
  mlServer: string;
  credentials: Credentials;
  /** Patients handled at the same time. */
  concurrency: number;
  /** Predict but never write. */
  dryRun: boolean;
  /** Only these pids; undefined means every patient. */
  patients?: number[] | undefined;
  /** Stop starting patients after this many in a row failed because a service is down. */
  breaker: number;
  /** Stop starting patients after this many failed of any kind. */
  maxFailures?: number | undefined;
  /** Seconds from the start after which no new patient starts. */
  deadlineSeconds?: number | undefined;
  /** After a stop (signal, deadline), seconds in-flight patients get before they are aborted. */
  graceSeconds: number;
}

export interface SweepOptions {
  /** Aborting it stops the sweep now: no new patient starts and in-flight requests are aborted. */
  signal?: AbortSignal | undefined;
  /** Aborting it stops the sweep gracefully: no new patient starts, in-flight ones finish. */
  stop?: AbortSignal | undefined;
  /** The list is known: `total` patients will be handled. */
  onStart?: ((total: number) => void) | undefined;
  onPatientDone?: ((result: PatientResult) => void) | undefined;
  /** A fact worth an info line (never carries patient data). */
  onInfo?: ((message: string) => void) | undefined;
  /** No further patient starts, for this reason (deadline, breaker, --max-failures, a 401/403). */
  onStop?: ((reason: SchedulerError) => void) | undefined;
}

/** Runs one sweep and reports it; expected failures end up in the report, never thrown. */
export async function runSweep(config: SweepConfig, options: SweepOptions = {}): Promise<Report> {
  const startedAt = new Date();
  const { signal, stop } = options;
  const results: PatientResult[] = [];
  /** What ended the run before or outside the patients (exit 4 or 5). */
  let error: SchedulerError | undefined;
  /** What stopped patients from starting: the breaker, --max-failures or a 401/403 (exit 6 or 4). */
  let halt: SchedulerError | undefined;
  /** Set when the deadline passes; it matters only if it kept a patient from starting. */
  let deadlineHit: SchedulerError | undefined;
  let deadlineStopped = false;
  const deadline =
    config.deadlineSeconds === undefined
      ? undefined
      : setTimeout(() => {
          deadlineHit = new SchedulerError(
            "deadline",
            `Deadline of ${config.deadlineSeconds}s reached: no new patient starts; in-flight patients finish.`,
          );
          options.onStop?.(deadlineHit);
        }, config.deadlineSeconds * 1000);
  deadline?.unref();

  const report = (result: PatientResult) => {
    results.push(result);
    options.onPatientDone?.(result);
  };

  try {
    const backend = createBackend({ ...config, baseUrl: config.patientServer, signal });
    const ml = createMl({ ...config, baseUrl: config.mlServer, signal });
    const { selected, rejected } = await prepare(backend, ml, config, options);
    options.onStart?.(selected.length + rejected.length);
    for (const r of rejected) report(r);

    const limit = pLimit(config.concurrency);
    let downInARow = 0;
    let failures = 0;
    const handle = async (patient: Patient) => {
      if (halt || signal?.aborted || stop?.aborted || deadlineHit) {
        deadlineStopped ||= deadlineHit !== undefined;
        return report(notStarted(patient));
      }
      const step = await sweepPatient(patient, { backend, ml, dryRun: config.dryRun, signal });
      report(step.result);
      downInARow = step.unavailable ? downInARow + 1 : 0;
      if (step.result.outcome === "failed") failures++;
      const cause = halt ? undefined : (step.fatal ?? threshold(config, downInARow, failures));
      if (cause) {
        halt = cause;
        options.onStop?.(cause);
      }
    };
    // Patients reach p-limit a window at a time: 100,000 queued tasks would cost ~90 MB of heap.
    // A window is many rounds long, so waiting for its slowest patient costs little.
    const window = Math.max(WINDOW_ROUNDS * config.concurrency, 256);
    for (let start = 0; start < selected.length; start += window) {
      await limit.map(selected.slice(start, start + window), handle);
    }
  } catch (caught) {
    if (!(caught instanceof SchedulerError)) throw caught;
    error = caught;
  } finally {
    clearTimeout(deadline);
  }

  const causes = [
    interruption(signal),
    interruption(stop),
    error,
    halt,
    deadlineStopped ? deadlineHit : undefined,
  ].filter((c) => c !== undefined);
  const failed = results.some((r) => r.outcome === "failed" || r.outcome === "interrupted");
  const exitCode = pickExitCode([
    ...causes.map((c) => c.exitCode),
    ...(failed ? [EXIT.patients_failed] : []),
  ]);
  const ended = causes.find((c) => c.exitCode === exitCode);
  return buildReport({
    startedAt,
    finishedAt: new Date(),
    dryRun: config.dryRun,
    concurrency: config.concurrency,
    exitCode,
    error: ended ? { code: ended.code, message: ended.message } : null,
    patients: results,
  });
}

/** The breaker and --max-failures: whether the failures so far mean no further patient starts. */
function threshold(
  config: SweepConfig,
  downInARow: number,
  failures: number,
): SchedulerError | undefined {
  if (downInARow >= config.breaker) {
    return new SchedulerError(
      "aborted",
      `${downInARow} patients in a row failed because a service is down (--breaker ${config.breaker}); stopped starting patients.`,
    );
  }
  if (config.maxFailures !== undefined && failures >= config.maxFailures) {
    return new SchedulerError(
      "aborted",
      `${failures} patients failed (--max-failures ${config.maxFailures}); stopped starting patients.`,
    );
  }
  return undefined;
}

/** Why a signal was aborted, as an error with an exit code (a caller's own reason counts as SIGTERM). */
function interruption(signal: AbortSignal | undefined): SchedulerError | undefined {
  if (!signal?.aborted) return undefined;
  return signal.reason instanceof SchedulerError
    ? signal.reason
    : new SchedulerError("sigterm", "Stopped by the caller.");
}

/**
 * Everything before the first patient: a failure here ends the run with exit 4 or 5. Selecting
 * here lets the raw list (names included) be collected before the sweep starts.
 */
async function prepare(
  backend: BackendClient,
  ml: MlClient,
  config: SweepConfig,
  options: SweepOptions,
): Promise<Selection> {
  await backend.authenticate().catch((e) => upstream(e, "Login"));
  const health = await ml.check().catch((e) => upstream(e, "ML server check"));
  if (health === "predict_probe") {
    options.onInfo?.(
      "ML server: GET /health did not answer true (a proxy in front?); POST /predict answered, so it is up.",
    );
  }
  const list = await backend
    .fetchAllPatients()
    .catch((e) => upstream(e, "Fetching the patient list"));
  return selectPatients(list, config.patients);
}

/** A request that failed before the first patient ends the run with exit 5. */
function upstream(error: unknown, what: string): never {
  if (error instanceof RequestFailure) {
    throw new UpstreamError(`${what} failed: ${error.message}`, { cause: error });
  }
  throw error;
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
