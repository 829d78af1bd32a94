/**
 * `check`: the steps before a sweep's first patient, and nothing after them: the login (or the
 * configured token), the ML server's health (with the nginx-proof probe) and a readable patient
 * list; with `--max-vitals-age`, whether the first listed patient's vitals carry timestamps. No
 * prediction, no write. A failed step ends the check with the exit code a sweep would.
 */
import { EXIT, type ExitCode, SchedulerError, UpstreamError } from "../errors.ts";
import { type BackendClient, createBackend } from "../services/backend.ts";
import { RequestFailure } from "../services/failure.ts";
import type { RequestRecord } from "../services/http.ts";
import { createMl } from "../services/ml.ts";
import type { SweepEvent } from "./events.ts";
import { VITALS_NEEDED } from "./patient.ts";
import { createListCheck } from "./select.ts";
import type { SweepConfig } from "./sweep.ts";

export type CheckStepName = "login" | "ml_server" | "patient_list" | "vitals";

export interface CheckStep {
  step: CheckStepName;
  ok: boolean;
  /** One line: how it passed (`health`, `predict_probe`, a count) or why it failed. */
  detail: string;
  /** A step that passed but foretells trouble (vitals without timestamps): one line saying what. */
  warning?: string;
}

/** The check as `check --json` prints it. */
export interface CheckReport {
  version: 1;
  command: "check";
  /** The version of what ran (the CLI's package version), null when the caller gave none. */
  schedulerVersion: string | null;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  exitCode: ExitCode;
  error: { code: string; message: string } | null;
  /** The steps that ran, in order; a failed step is the last. */
  steps: CheckStep[];
}

export interface CheckOptions {
  /** Aborting it stops the check now; a SchedulerError reason becomes the check's error. */
  signal?: AbortSignal | undefined;
  onEvent?: ((event: SweepEvent) => void) | undefined;
  /** The caller's version, carried into the report (the CLI's package version). */
  schedulerVersion?: string | undefined;
}

/** Runs the checks in order; expected failures end up in the report, never thrown. */
export async function runCheck(
  config: SweepConfig,
  options: CheckOptions = {},
): Promise<CheckReport> {
  const startedAt = new Date();
  const { signal } = options;
  const onRequest = (record: RequestRecord) =>
    options.onEvent?.({ type: "request_done", ...record });
  const backend = createBackend({ ...config, baseUrl: config.patientServer, signal, onRequest });
  const ml = createMl({ ...config, baseUrl: config.mlServer, signal, onRequest });
  const steps: CheckStep[] = [];
  let error: SchedulerError | undefined;

  const step = async (name: CheckStepName, what: string, work: () => Promise<string>) => {
    if (error) return;
    try {
      steps.push({ step: name, ok: true, detail: await work() });
    } catch (caught) {
      error = asSchedulerError(caught, what, signal);
      steps.push({ step: name, ok: false, detail: error.message });
    }
  };
  await step("login", "Login", async () => {
    await backend.authenticate();
    return config.credentials.token === undefined ? "logged in" : "token accepted or replaced";
  });
  await step("ml_server", "ML server check", async () => {
    const how = await ml.check();
    if (how === "predict_probe") options.onEvent?.({ type: "ml_probe_used" });
    return how;
  });
  let first: number | undefined;
  await step("patient_list", "Fetching the patient list", async () => {
    const list = createListCheck();
    await backend.fetchAllPatients(list);
    const { selected, rejected } = list.select();
    first = selected[0]?.pid;
    return `${selected.length} patients, ${rejected.length} records that cannot be handled`;
  });
  if (config.maxVitalsAgeMs !== undefined && !error) {
    steps.push(await vitalsTimestamps(backend, first));
  }

  const finishedAt = new Date();
  return {
    version: 1,
    command: "check",
    schedulerVersion: options.schedulerVersion ?? null,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: finishedAt.getTime() - startedAt.getTime(),
    exitCode: error?.exitCode ?? EXIT.ok,
    error: error ? { code: error.code, message: error.message } : null,
    steps,
  };
}

/**
 * `--max-vitals-age` needs timestamped vitals: the first listed patient's tell whether this backend
 * gives them. Never a failure (a sweep would fail patients, not stop): a warning when it does not.
 */
async function vitalsTimestamps(
  backend: BackendClient,
  pid: number | undefined,
): Promise<CheckStep> {
  const warn = (warning: string): CheckStep => ({
    step: "vitals",
    ok: true,
    detail: warning,
    warning,
  });
  if (pid === undefined)
    return warn(
      "no patient listed: cannot tell whether vital records carry timestamps, which --max-vitals-age needs.",
    );
  try {
    const vitals = await backend.fetchVitals(pid, VITALS_NEEDED);
    if (vitals.length === 0) {
      return warn(
        `pid ${pid}, the first listed, has no vitals: cannot tell whether vital records carry timestamps, which --max-vitals-age needs.`,
      );
    }
    if (vitals.every((v) => v.timestamp !== undefined)) {
      return { step: "vitals", ok: true, detail: `pid ${pid}'s vital records carry timestamps` };
    }
  } catch (caught) {
    if (!(caught instanceof RequestFailure || caught instanceof SchedulerError)) throw caught;
    return warn(
      `pid ${pid}'s vitals could not be fetched (${caught.message}): cannot tell whether they carry timestamps, which --max-vitals-age needs.`,
    );
  }
  return warn(
    `pid ${pid}'s vital records carry no timestamp: with --max-vitals-age every patient would fail (no_vitals_timestamp); unset it or upgrade the backend.`,
  );
}

/** A failed step as the exit code a sweep would give it; anything unexpected is a bug. */
function asSchedulerError(
  caught: unknown,
  what: string,
  signal: AbortSignal | undefined,
): SchedulerError {
  if (signal?.aborted && signal.reason instanceof SchedulerError) return signal.reason;
  if (caught instanceof SchedulerError) return caught;
  if (caught instanceof RequestFailure) {
    return new UpstreamError(`${what} failed: ${caught.message}`, { cause: caught });
  }
  throw caught;
}
