/**
 * One prediction sweep: authenticate, check the ML server, fetch the patients, then for each
 * selected patient (at most `concurrency` at a time) fetch vitals, predict and write the status.
 * Never reads the environment, never prints, never exits: progress leaves through callbacks.
 */
import pLimit from "p-limit";
import { type BackendClient, type Credentials, createBackend, upstream } from "./backend.ts";
import { type ExitCode, pickExitCode, SchedulerError } from "./errors.ts";
import type { ServiceSettings } from "./http.ts";
import { createMl, type MlClient } from "./ml.ts";
import { sweepPatient } from "./patient.ts";
import { buildReport, type PatientResult, type Report } from "./report.ts";
import { selectPatients } from "./select.ts";

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
}

/** Runs one sweep and reports it; expected failures end up in the report, never thrown. */
export async function runSweep(config: SweepConfig, options: SweepOptions = {}): Promise<Report> {
  const startedAt = new Date();
  const { signal, stop } = options;
  const codes: ExitCode[] = [];
  const results: PatientResult[] = [];
  let error: SchedulerError | undefined;
  let halt: SchedulerError | undefined;
  let deadlineHit = false;
  const deadline =
    config.deadlineSeconds === undefined
      ? undefined
      : setTimeout(() => {
          deadlineHit = true;
          options.onInfo?.(
            `Deadline of ${config.deadlineSeconds}s reached: no new patient starts; in-flight patients finish.`,
          );
        }, config.deadlineSeconds * 1000);
  deadline?.unref();

  try {
    const backend = createBackend({ ...config, baseUrl: config.patientServer, signal });
    const ml = createMl({ ...config, baseUrl: config.mlServer, signal });
    const list = await prepare(backend, ml, options);
    const { selected, rejected } = selectPatients(list, config.patients);
    for (const r of rejected) report(r);
    options.onStart?.(selected.length + rejected.length);

    const limit = pLimit(config.concurrency);
    let downInARow = 0;
    let failures = 0;
    const stopReason = () =>
      halt ?? reasonOf(signal) ?? reasonOf(stop) ?? (deadlineHit ? "deadline" : undefined);

    await Promise.all(
      selected.map((patient) =>
        limit(async () => {
          const why = stopReason();
          if (why !== undefined) {
            if (why === "deadline") codes.push(8);
            return report(notStarted(patient.pid, patient.status.id));
          }
          const { result, fatal, unavailable } = await sweepPatient(patient, {
            backend,
            ml,
            dryRun: config.dryRun,
            signal,
          });
          report(result);
          if (fatal) halt ??= fatal;
          downInARow = unavailable ? downInARow + 1 : 0;
          if (result.outcome === "failed") failures++;
          if (downInARow >= config.breaker) {
            halt ??= new SchedulerError(
              "aborted",
              `${downInARow} patients in a row failed because a service is down; stopped starting patients.`,
            );
          } else if (config.maxFailures !== undefined && failures >= config.maxFailures) {
            halt ??= new SchedulerError(
              "aborted",
              `${failures} patients failed (--max-failures ${config.maxFailures}); stopped starting patients.`,
            );
          }
        }),
      ),
    );
  } catch (caught) {
    if (!(caught instanceof SchedulerError)) throw caught;
    error = caught;
  } finally {
    clearTimeout(deadline);
  }

  function report(result: PatientResult): void {
    results.push(result);
    options.onPatientDone?.(result);
  }

  const interruption = [signal?.reason, stop?.reason].find((r) => r instanceof SchedulerError);
  const ended = interruption ?? error ?? halt;
  if (interruption) codes.push(interruption.exitCode);
  if (error) codes.push(error.exitCode);
  if (halt) codes.push(halt.exitCode);
  if (results.some((r) => r.outcome === "failed" || r.outcome === "interrupted")) codes.push(1);

  return buildReport({
    startedAt,
    finishedAt: new Date(),
    dryRun: config.dryRun,
    concurrency: config.concurrency,
    exitCode: pickExitCode(codes),
    error: ended ? { code: ended.code, message: ended.message } : null,
    patients: results,
  });
}

/** Everything before the first patient: a failure here ends the run with exit 4 or 5. */
async function prepare(backend: BackendClient, ml: MlClient, options: SweepOptions) {
  await backend.authenticate().catch((e) => upstream(e, "Login"));
  const health = await ml.check().catch((e) => upstream(e, "ML server check"));
  if (health === "predict_probe") {
    options.onInfo?.(
      "ML server: GET /health did not answer true (a proxy in front?); POST /predict answered, so it is up.",
    );
  }
  return backend.fetchAllPatients().catch((e) => upstream(e, "Fetching the patient list"));
}

function reasonOf(signal: AbortSignal | undefined): string | undefined {
  return signal?.aborted ? "stopped" : undefined;
}

function notStarted(pid: number, from: number): PatientResult {
  return { pid, outcome: "not_started", from, to: null, stage: null, reason: null, detail: null };
}
